// The one time helper: the monotonic clock every process schedules by, and the two ways ecgq
// measures an interval on it (fractional milliseconds for timings, whole ones for ages).
#pragma once

#include <chrono>
#include <cstdint>

namespace ecgq {

// Monotonic, so deadlines and timings survive wall-clock jumps.
using SteadyClock = std::chrono::steady_clock;
// A point on the monotonic clock.
using SteadyTime = SteadyClock::time_point;

// Milliseconds from `a` to `b`, fractional (negative when b is before a): for timings.
inline double ms_between(SteadyTime a, SteadyTime b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

// Whole milliseconds elapsed from `t` to `now` (truncated): for ages and uptimes.
inline int64_t ms_since(SteadyTime t, SteadyTime now) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(now - t).count();
}

}  // namespace ecgq
