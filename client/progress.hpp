// Progress of `ecgq submit` on stderr: a redrawn bar on a terminal, plain lines every few seconds
// otherwise (logs, CI).
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdio>

namespace ecgq::client {

// Counts shown by the progress reporter.
struct ProgressCounts {
  int64_t done = 0;    // records answered (ok or not)
  int64_t failed = 0;  // of which failed
  int64_t total = 0;   // records to do (0 = unknown)
};

// Draws progress on `stream`; `tty` picks the bar, else a line every `interval`.
class ProgressReporter {
 public:
  // Decides bar or lines from whether stderr is a terminal.
  ProgressReporter();
  // For tests and explicit choices.
  ProgressReporter(FILE* stream, bool tty, std::chrono::milliseconds interval);
  // Redraws when due (bar: 5 times a second; lines: every interval); `force` draws now.
  void update(const ProgressCounts& c, bool force = false);
  // Removes the bar before other stderr output.
  void clear();

 private:
  using Clock = std::chrono::steady_clock;
  FILE* stream_;
  bool tty_;
  std::chrono::milliseconds interval_;
  Clock::time_point started_ = Clock::now();
  Clock::time_point last_{};
  bool drawn_ = false;
};

}  // namespace ecgq::client
