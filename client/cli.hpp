// The `ecgq` command line: `submit` and `status` (client/main.cpp only parses and dispatches).
#pragma once

#include <string>
#include <vector>

#include "client/client.hpp"
#include "client/job_source.hpp"

namespace ecgq::client {

// Exit codes of `ecgq`.
inline constexpr int kExitOk = 0;
inline constexpr int kExitFailed = 1;         // a record failed, or the broker is unreachable
inline constexpr int kExitUsage = 2;          // bad command line
inline constexpr int kExitInterrupted = 130;  // Ctrl-C

// Everything `ecgq submit` needs.
struct SubmitCommand {
  ClientOptions client;
  InputOptions inputs;
  std::vector<std::string> paths;
  size_t window = 64;
  bool ordered = false;
  std::string output_path;  // "" = stdout
};

// Everything `ecgq status` needs.
struct StatusCommand {
  ClientOptions client;
  bool json = false;   // print mmi.status as JSON
  bool check = false;  // exit 0 only when the service has a live worker
};

// Runs `ecgq submit`: one JSON line per record on stdout (or the output file), progress and
// summary on stderr; returns the exit code.
int run_submit(const SubmitCommand& command);
// Runs `ecgq status`; returns the exit code.
int run_status(const StatusCommand& command);

}  // namespace ecgq::client
