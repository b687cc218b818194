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

// A header of one type byte and `payload` bytes of data.
Header fixed(uint64_t payload) {
  Header h;
  h.header = 1;
  h.payload = payload;
  return h;
}

// A header whose `len_bytes`-byte length follows the type byte (then `extra` bytes: an ext's
// type); a container's length counts `mult` values per element. header == 0 when truncated.
Header sized(const unsigned char* p, size_t left, size_t len_bytes, uint64_t mult, bool container,
             size_t extra = 0) {
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
}

// Types 0xc0-0xdf: nil, booleans, bin, ext, floats, integers, fixext, str, array and map
// 16/32. header == 0 for 0xc1 (never used) and truncated lengths.
Header read_typed_header(const unsigned char* p, size_t left) {
  const unsigned t = p[0];
  if (t == 0xc0 || t == 0xc2 || t == 0xc3) return fixed(0);  // nil, false, true
  if (t >= 0xc4 && t <= 0xc6) return sized(p, left, size_t{1} << (t - 0xc4), 1, false);     // bin
  if (t >= 0xc7 && t <= 0xc9) return sized(p, left, size_t{1} << (t - 0xc7), 1, false, 1);  // ext
  if (t == 0xca) return fixed(4);                                             // float 32
  if (t == 0xcb) return fixed(8);                                             // float 64
  if (t >= 0xcc && t <= 0xcf) return fixed(uint64_t{1} << (t - 0xcc));        // uint 8-64
  if (t >= 0xd0 && t <= 0xd3) return fixed(uint64_t{1} << (t - 0xd0));        // int 8-64
  if (t >= 0xd4 && t <= 0xd8) return fixed(1 + (uint64_t{1} << (t - 0xd4)));  // fixext: type + data
  if (t >= 0xd9 && t <= 0xdb) return sized(p, left, size_t{1} << (t - 0xd9), 1, false);  // str
  if (t == 0xdc || t == 0xdd) return sized(p, left, t == 0xdc ? 2 : 4, 1, true);         // array
  if (t == 0xde || t == 0xdf) return sized(p, left, t == 0xde ? 2 : 4, 2, true);         // map
  return Header{};                                                                       // 0xc1
}

// Decodes the header at `p` with `left` bytes available; header == 0 when truncated or invalid.
Header read_header(const unsigned char* p, size_t left) {
  const unsigned t = p[0];
  if (t <= 0x7f || t >= 0xe0) return fixed(0);          // fixint
  if (t <= 0x8f) return {1, 0, 2u * (t & 0x0f), true};  // fixmap
  if (t <= 0x9f) return {1, 0, t & 0x0fu, true};        // fixarray
  if (t <= 0xbf) return fixed(t & 0x1f);                // fixstr
  return read_typed_header(p, left);
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
