// Text that came from outside (paths, CSV cells, client job ids, error messages) made safe for
// the places it goes: JSON and CSV output need valid UTF-8, log lines need one short line.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace ecgq {

// `text` with every byte that is not part of a valid UTF-8 sequence written as the four
// characters \xNN; valid text comes back unchanged, so the result is always valid UTF-8 and a
// reader can still tell which bytes a path held.
std::string escape_invalid_utf8(std::string_view text);

// True when `text` is valid UTF-8 without control characters (C0 or DEL): safe to print as it
// is on one log line.
bool is_plain_text(std::string_view text);

// `text` for a log line: invalid UTF-8 and control characters escaped (\xNN, \n, \t, \\, \"),
// and at most `max_bytes` of the input shown, then "...(+N bytes)".
std::string loggable(std::string_view text, size_t max_bytes = 128);

}  // namespace ecgq
