// Durations as users write them: a number and a unit ("300ms", "1s", "15m", "1h").
#pragma once

#include <chrono>
#include <string>

#include "common/status.hpp"

namespace ecgq {

// Milliseconds are the resolution of every duration setting.
using Millis = std::chrono::milliseconds;

// Parses "250ms", "2.5s", "15m", "1h", "1d" (a bare number is rejected: units are mandatory).
Expected<Millis> parse_duration(const std::string& text);

// Formats a duration in the largest unit that keeps it exact ("1500ms", "15m").
std::string format_duration(Millis d);

}  // namespace ecgq
