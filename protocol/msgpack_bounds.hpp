// A check of a msgpack body's shape before it is unpacked: msgpack-c allocates an object (16
// bytes, 32 per map entry) for every element up front, so a body of a million one-byte nils
// costs 16 times its size, and a declared length past the end costs what it declares. The scan
// allocates nothing and refuses those bodies first.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "common/status.hpp"

namespace ecgq::schema {

// What a body may hold at most.
struct MsgpackBounds {
  size_t max_depth = 16;           // nested arrays/maps (the top-level map is depth 1)
  uint64_t max_objects = 1 << 20;  // values in all (a map entry counts as two)
};

// Ok when `body` is exactly one msgpack object whose every declared length fits in the bytes
// that follow it and that stays within `bounds`; otherwise bad_request (field "") saying which
// rule it broke and where. Never allocates, and stops at the first violation.
Status check_msgpack_bounds(std::string_view body, const MsgpackBounds& bounds = {});

}  // namespace ecgq::schema
