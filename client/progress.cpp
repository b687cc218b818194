#include "client/progress.hpp"

#include <unistd.h>

#include <algorithm>
#include <string>

namespace ecgq::client {

namespace {

std::string clock_text(double seconds) {
  if (!(seconds >= 0) || seconds > 1e7) return "?";
  const long s = static_cast<long>(seconds + 0.5);
  char buf[32];
  if (s >= 3600)
    std::snprintf(buf, sizeof buf, "%ld:%02ld:%02ld", s / 3600, (s / 60) % 60, s % 60);
  else
    std::snprintf(buf, sizeof buf, "%ld:%02ld", s / 60, s % 60);
  return buf;
}

}  // namespace

ProgressReporter::ProgressReporter()
    : ProgressReporter(stderr, isatty(STDERR_FILENO) == 1, std::chrono::seconds(5)) {}

ProgressReporter::ProgressReporter(FILE* stream, bool tty, std::chrono::milliseconds interval)
    : stream_(stream), tty_(tty), interval_(interval), last_(Clock::now()) {}

void ProgressReporter::update(const ProgressCounts& c, bool force) {
  const auto now = Clock::now();
  const auto every = tty_ ? std::chrono::milliseconds(200) : interval_;
  if (!force && now - last_ < every) return;
  last_ = now;
  const double elapsed = std::chrono::duration<double>(now - started_).count();
  const double rate = elapsed > 0 ? static_cast<double>(c.done) / elapsed : 0;
  const bool known = c.total > 0;
  const double eta = known && rate > 0 ? static_cast<double>(c.total - c.done) / rate : -1;
  const std::string total = known ? std::to_string(c.total) : "?";
  if (tty_) {
    constexpr int kWidth = 30;
    const int filled =
        known
            ? static_cast<int>(kWidth * static_cast<double>(c.done) / static_cast<double>(c.total))
            : 0;
    std::string bar(static_cast<size_t>(std::min(filled, kWidth)), '#');
    bar.resize(kWidth, '.');
    std::fprintf(stream_, "\r\033[K[%s] %lld/%s %.1f/s ETA %s failed %lld", bar.c_str(),
                 static_cast<long long>(c.done), total.c_str(), rate, clock_text(eta).c_str(),
                 static_cast<long long>(c.failed));
    drawn_ = true;
  } else {
    std::fprintf(stream_, "ecgq: progress %lld/%s done, %lld failed, %.1f records/s, eta %s\n",
                 static_cast<long long>(c.done), total.c_str(), static_cast<long long>(c.failed),
                 rate, clock_text(eta).c_str());
  }
  std::fflush(stream_);
}

void ProgressReporter::clear() {
  if (drawn_) std::fprintf(stream_, "\r\033[K");
  drawn_ = false;
}

}  // namespace ecgq::client
