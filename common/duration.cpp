#include "common/duration.hpp"

#include <cctype>
#include <cmath>
#include <cstdlib>

namespace ecgq {

Expected<Millis> parse_duration(const std::string& text) {
  const std::string bad = "expected a number and a unit (ms, s, m, h, d), e.g. 300ms or 15m; got '" +
                          text + "'";
  size_t i = 0;
  while (i < text.size() && (std::isdigit(static_cast<unsigned char>(text[i])) || text[i] == '.')) ++i;
  if (i == 0 || i == text.size()) return Status(ErrorCode::BadConfig, bad);
  char* end = nullptr;
  const std::string number = text.substr(0, i);
  double value = std::strtod(number.c_str(), &end);
  if (end != number.c_str() + number.size() || !std::isfinite(value) || value < 0)
    return Status(ErrorCode::BadConfig, bad);
  const std::string unit = text.substr(i);
  double scale = 0;
  if (unit == "ms") scale = 1;
  else if (unit == "s") scale = 1e3;
  else if (unit == "m" || unit == "min") scale = 60e3;
  else if (unit == "h") scale = 3600e3;
  else if (unit == "d") scale = 86400e3;
  else
    return Status(ErrorCode::BadConfig, bad);
  double ms = value * scale;
  if (ms > 1e15) return Status(ErrorCode::BadConfig, "duration too large: '" + text + "'");
  return Millis(static_cast<int64_t>(std::llround(ms)));
}

std::string format_duration(Millis d) {
  const int64_t ms = d.count();
  if (ms != 0 && ms % 3600000 == 0) return std::to_string(ms / 3600000) + "h";
  if (ms != 0 && ms % 60000 == 0) return std::to_string(ms / 60000) + "m";
  if (ms != 0 && ms % 1000 == 0) return std::to_string(ms / 1000) + "s";
  return std::to_string(ms) + "ms";
}

}  // namespace ecgq
