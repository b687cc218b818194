// The one pair of time helpers: milliseconds between two steady-clock points, as the results'
// *_ms fields and the logs report them.
#pragma once

#include <chrono>

namespace ecgq {

// The steady clock every process measures durations with (wall-clock jumps do not move it).
using SteadyClock = std::chrono::steady_clock;

// Milliseconds from `from` to `to` (negative when `to` is earlier), with sub-ms precision.
inline double ms_between(SteadyClock::time_point from, SteadyClock::time_point to) {
  return std::chrono::duration<double, std::milli>(to - from).count();
}

// Milliseconds from `since` until now.
inline double ms_since(SteadyClock::time_point since) {
  return ms_between(since, SteadyClock::now());
}

// Milliseconds from `since` until `now`, for code whose clock is injected (the broker core).
inline double ms_since(SteadyClock::time_point since, SteadyClock::time_point now) {
  return ms_between(since, now);
}

}  // namespace ecgq
