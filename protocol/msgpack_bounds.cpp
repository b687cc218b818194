#include "protocol/msgpack_bounds.hpp"

#include <string>
#include <vector>

namespace ecgq::schema {

namespace {

// Big-endian unsigned integer of `n` bytes at `p`.
uint64_t read_be(const unsigned char* p, size_t n) {
  uint64_t v = 0;
  for (size_t i = 0; i < n; ++i) v = (v << 8) | p[i];
  return v;
}

// One msgpack header: how many bytes it takes, how many payload bytes follow it, and how many
// child values it opens (arrays: n, maps: 2n).
struct Header {
  size_t header = 0;      // bytes of the type byte and its length fields; 0 = unknown type
  uint64_t payload = 0;   // bytes of string/bin/ext/number data after the header
  uint64_t children = 0;  // values that follow as this container's elements
  bool container = false;
};

// Decodes the header at `p` with `left` bytes available; header == 0 when truncated or invalid.
Header read_header(const unsigned char* p, size_t left) {
  const unsigned t = p[0];
  auto sized = [&](size_t len_bytes, uint64_t mult, bool container, size_t extra) {
    Header h;
    if (left < 1 + len_bytes + extra) return h;
    const uint64_t n = read_be(p + 1, len_bytes);
    h.header = 1 + len_bytes + extra;
    if (container)
      h.children = n * mult;
    else
      h.payload = n;
    h.container = container;
    return h;
  };
  auto fixed = [&](size_t payload) {
    Header h;
    h.header = 1;
    h.payload = payload;
    return h;
  };
  if (t <= 0x7f || t >= 0xe0) return fixed(0);                       // fixint
  if (t >= 0x80 && t <= 0x8f) return {1, 0, 2u * (t & 0x0f), true};  // fixmap
  if (t >= 0x90 && t <= 0x9f) return {1, 0, t & 0x0fu, true};        // fixarray
  if (t >= 0xa0 && t <= 0xbf) return fixed(t & 0x1f);                // fixstr
  switch (t) {
    case 0xc0:  // nil
    case 0xc2:  // false
    case 0xc3:  // true
      return fixed(0);
    case 0xc4:
      return sized(1, 1, false, 0);  // bin 8
    case 0xc5:
      return sized(2, 1, false, 0);  // bin 16
    case 0xc6:
      return sized(4, 1, false, 0);  // bin 32
    case 0xc7:
      return sized(1, 1, false, 1);  // ext 8 (+ its type byte)
    case 0xc8:
      return sized(2, 1, false, 1);  // ext 16
    case 0xc9:
      return sized(4, 1, false, 1);  // ext 32
    case 0xca:
      return fixed(4);  // float 32
    case 0xcb:
      return fixed(8);  // float 64
    case 0xcc:
    case 0xd0:
      return fixed(1);  // (u)int 8
    case 0xcd:
    case 0xd1:
      return fixed(2);  // (u)int 16
    case 0xce:
    case 0xd2:
      return fixed(4);  // (u)int 32
    case 0xcf:
    case 0xd3:
      return fixed(8);  // (u)int 64
    case 0xd4:
      return fixed(2);  // fixext 1 (type + 1)
    case 0xd5:
      return fixed(3);
    case 0xd6:
      return fixed(5);
    case 0xd7:
      return fixed(9);
    case 0xd8:
      return fixed(17);
    case 0xd9:
      return sized(1, 1, false, 0);  // str 8
    case 0xda:
      return sized(2, 1, false, 0);  // str 16
    case 0xdb:
      return sized(4, 1, false, 0);  // str 32
    case 0xdc:
      return sized(2, 1, true, 0);  // array 16
    case 0xdd:
      return sized(4, 1, true, 0);  // array 32
    case 0xde:
      return sized(2, 2, true, 0);  // map 16
    case 0xdf:
      return sized(4, 2, true, 0);  // map 32
    default:
      return Header{};  // 0xc1 is never used
  }
}

Status refuse(const std::string& why, size_t offset) {
  return Status(ErrorCode::BadRequest, "body " + why + " (at byte " + std::to_string(offset) + ")",
                "");
}

}  // namespace

Status check_msgpack_bounds(std::string_view body, const MsgpackBounds& bounds) {
  const auto* p = reinterpret_cast<const unsigned char*>(body.data());
  const size_t size = body.size();
  if (size == 0) return Status(ErrorCode::BadRequest, "body is empty; expected a msgpack map", "");
  // Values still to read at each open depth; the body itself is one value at depth 0.
  std::vector<uint64_t> pending;
  pending.reserve(bounds.max_depth + 1);
  pending.push_back(1);
  uint64_t objects = 0;
  size_t off = 0;
  while (!pending.empty()) {
    if (pending.back() == 0) {
      pending.pop_back();
      continue;
    }
    --pending.back();
    if (off >= size) return refuse("is truncated msgpack (a value is missing)", off);
    const Header h = read_header(p + off, size - off);
    if (h.header == 0) {
      return p[off] == 0xc1 ? refuse("is not valid msgpack (byte 0xc1)", off)
                            : refuse("is truncated msgpack (a length runs past the end)", off);
    }
    if (++objects > bounds.max_objects)
      return refuse("holds more than " + std::to_string(bounds.max_objects) + " msgpack values",
                    off);
    const size_t left = size - off - h.header;
    if (h.payload > left) {
      return refuse("declares " + std::to_string(h.payload) + " bytes but only " +
                        std::to_string(left) + " follow",
                    off);
    }
    // Every element takes at least one byte, so a count beyond the bytes left is a lie.
    if (h.children > left) {
      return refuse("declares " + std::to_string(h.children) + " elements but only " +
                        std::to_string(left) + " bytes follow",
                    off);
    }
    off += h.header + static_cast<size_t>(h.payload);
    if (h.container && h.children > 0) {
      if (pending.size() >= bounds.max_depth)
        return refuse("nests deeper than " + std::to_string(bounds.max_depth) + " levels", off);
      pending.push_back(h.children);
    }
  }
  if (off != size) {
    return Status(
        ErrorCode::BadRequest,
        "body has " + std::to_string(size - off) + " trailing bytes after the msgpack object", "");
  }
  return Status::Ok();
}

}  // namespace ecgq::schema
