// What every ecgq program does with a command line CLI11 refused: --help and --version print to
// stdout and exit 0; anything else is one line on stderr naming the problem, and exit 2.
#pragma once

#include <CLI/CLI.hpp>
#include <iostream>
#include <string>

namespace ecgq {

// The exit code for `e` raised by `app.parse`, after printing what it calls for. `program` is
// how the command is spelled ("ecgq-worker serve").
inline int parse_error_exit(const CLI::App& app, const CLI::ParseError& e,
                            const std::string& program) {
  if (e.get_exit_code() == 0) {
    // --help or --version: CLI11 prints them (help to stdout, as the tests expect).
    return const_cast<CLI::App&>(app).exit(e) == 0 ? 0 : 2;
  }
  std::string what = e.what();
  for (char& c : what)
    if (c == '\n') c = ' ';
  std::cerr << program << ": " << what << " (see " << program << " --help)\n";
  return 2;
}

}  // namespace ecgq
