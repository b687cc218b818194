// Test support: real child processes (broker, workers, CLI) on 127.0.0.1.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <string>
#include <vector>

namespace ecgq::test {

// Absolute path of a built binary (ecgq-broker, ecgq-worker, ecgq).
std::string bin(const std::string& name);
// Absolute path of committed test data: tests/data/<relative> (tests/data/README.md).
// "ecgfm/tiny_finetuned.pt" is data/models/demo-random-weights-tiny.pt (the same bytes).
std::string data_path(const std::string& relative);
// Absolute path inside the source tree.
std::string source(const std::string& relative);

// A TCP port on 127.0.0.1 that was free when asked.
int free_port();
// "tcp://127.0.0.1:PORT" for a fresh free port.
std::string free_endpoint();

// A fresh empty directory under /tmp, removed on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  // The directory path.
  const std::string& path() const { return path_; }
  // path() + "/" + name.
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// A child process with stdout/stderr captured to files; killed (SIGKILL) on destruction.
class ChildProcess {
 public:
  // Starts `argv[0]` with `argv`, adding `env` to the current environment.
  ChildProcess(std::vector<std::string> argv, std::map<std::string, std::string> env = {});
  ~ChildProcess();
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  // The process id.
  int pid() const { return pid_; }
  // Sends a signal.
  void signal(int sig);
  // Waits for exit up to `timeout`; returns the exit code (128+signal when killed), or -1 on
  // timeout.
  int wait(std::chrono::milliseconds timeout);
  // True while the process has not exited.
  bool running();
  // Everything the process wrote to stdout / stderr so far.
  std::string stdout_text() const;
  std::string stderr_text() const;

 private:
  int pid_ = -1;
  int exit_code_ = -1;
  bool reaped_ = false;
  std::string out_path_;
  std::string err_path_;
};

// Runs a command to completion (with a timeout) and returns exit code, stdout and stderr.
struct CommandResult {
  int exit_code = -1;
  std::string out;
  std::string err;
};
CommandResult run_command(std::vector<std::string> argv, std::chrono::milliseconds timeout,
                          std::map<std::string, std::string> env = {});

// Another process truncates `path` with a blocking open (O_TRUNC: it waits for a read lease on
// the file to go; truncate(1) opens with O_NONBLOCK and would be refused instead), then writes
// the old size of zeros back.
CommandResult truncate_and_zero_fill(const std::string& path, std::chrono::milliseconds timeout);

// Polls `condition` every few milliseconds until it holds or `timeout` passes; returns whether
// it held. This waits for an observable state, never for a fixed time.
bool wait_until(const std::function<bool()>& condition, std::chrono::milliseconds timeout);

}  // namespace ecgq::test
