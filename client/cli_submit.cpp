// `ecgq submit`: stream records through the broker and print one JSON line per record.
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <fstream>
#include <iostream>

#include "client/batch.hpp"
#include "client/cli.hpp"
#include "client/json_output.hpp"

namespace ecgq::client {

namespace {

volatile std::sig_atomic_t g_interrupts = 0;

void on_sigint(int) {
  // The first Ctrl-C cancels cleanly; a second one means "now".
  if (++g_interrupts > 1) _exit(kExitInterrupted);
}

// Installs the SIGINT handler for the lifetime of a submit and restores the old one after.
class SigintGuard {
 public:
  SigintGuard() {
    g_interrupts = 0;
    struct sigaction sa {};
    sa.sa_handler = on_sigint;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old_);
  }
  ~SigintGuard() { sigaction(SIGINT, &old_, nullptr); }
  SigintGuard(const SigintGuard&) = delete;
  SigintGuard& operator=(const SigintGuard&) = delete;

 private:
  struct sigaction old_ {};
};

// A progress line on a terminal, redrawn at most five times a second.
class ProgressLine {
 public:
  ProgressLine() : enabled_(isatty(STDERR_FILENO) == 1) {}
  void update(const BatchSummary& s, bool force = false) {
    if (!enabled_) return;
    const auto now = std::chrono::steady_clock::now();
    if (!force && now - last_ < std::chrono::milliseconds(200)) return;
    last_ = now;
    std::fprintf(stderr, "\r\033[Kecgq: %lld done (%lld ok, %lld failed)",
                 static_cast<long long>(s.records), static_cast<long long>(s.ok),
                 static_cast<long long>(s.failed));
    drawn_ = true;
  }
  void clear() {
    if (drawn_) std::fprintf(stderr, "\r\033[K");
    drawn_ = false;
  }

 private:
  bool enabled_;
  bool drawn_ = false;
  std::chrono::steady_clock::time_point last_{};
};

}  // namespace

int run_submit(const SubmitCommand& command) {
  std::ofstream file;
  if (!command.output_path.empty()) {
    file.open(command.output_path, std::ios::out | std::ios::trunc);
    if (!file) {
      std::fprintf(stderr, "ecgq: cannot write %s\n", command.output_path.c_str());
      return kExitFailed;
    }
  }
  std::ostream& out = command.output_path.empty() ? std::cout : file;

  Client client(command.client);
  JobSource source(command.paths, command.inputs);
  BatchOptions options;
  options.window = command.window;
  options.ordered = command.ordered;
  options.interrupted = [] { return g_interrupts > 0; };

  SigintGuard sigint;
  ProgressLine progress;
  BatchSummary live;
  const auto started = std::chrono::steady_clock::now();
  BatchSummary summary = run_batch(
      client, [&] { return source.next(); }, options,
      [&](const Outcome& o) {
        out << result_json(o.path, o.result, command.inputs.outputs).dump() << '\n';
        out.flush();
        ++live.records;
        (o.result.status == "ok" ? live.ok : live.failed)++;
        progress.update(live);
      });
  progress.clear();
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();

  if (summary.interrupted) {
    std::fprintf(stderr, "ecgq: interrupted: %lld records written",
                 static_cast<long long>(summary.records));
    if (summary.cancel) {
      std::fprintf(stderr, ", %lld queued jobs cancelled, %lld still running (not waited for)",
                   static_cast<long long>(summary.cancel->cancelled),
                   static_cast<long long>(summary.cancel->in_flight));
    }
    std::fprintf(stderr, "\n");
    return kExitInterrupted;
  }
  if (!summary.fatal.ok()) {
    std::fprintf(stderr, "ecgq: error: %s\n", summary.fatal.message().c_str());
    return kExitFailed;
  }
  std::fprintf(stderr, "ecgq: %lld records: %lld ok, %lld failed in %.2fs (%.1f records/s)\n",
               static_cast<long long>(summary.records), static_cast<long long>(summary.ok),
               static_cast<long long>(summary.failed), seconds,
               seconds > 0 ? static_cast<double>(summary.records) / seconds : 0.0);
  if (summary.records == 0) {
    std::fprintf(stderr, "ecgq: error: no records found\n");
    return kExitFailed;
  }
  return summary.failed == 0 ? kExitOk : kExitFailed;
}

}  // namespace ecgq::client
