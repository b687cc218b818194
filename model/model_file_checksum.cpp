// The model file's checksum (Checksum in model_file.hpp): CRC-32C over four interleaved lanes of
// 8-byte words, on SSE 4.2's crc32 instruction when the CPU has it.
#include <array>
#include <cstdio>
#include <cstring>

#include "model/model_file.hpp"

#if defined(__x86_64__)
#include <nmmintrin.h>
#endif

namespace ecgq::mfile {
namespace {

// CRC-32C (Castagnoli) of one 8-byte word, without SSE 4.2.
uint32_t crc32c_soft(uint32_t crc, uint64_t word) {
  static const auto table = [] {
    std::array<uint32_t, 256> t{};
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c >> 1) ^ (0x82F63B78u & (0u - (c & 1u)));
      t[i] = c;
    }
    return t;
  }();
  for (int b = 0; b < 8; ++b) crc = table[(crc ^ (word >> (8 * b))) & 0xFFu] ^ (crc >> 8);
  return crc;
}

#if defined(__x86_64__)
__attribute__((target("sse4.2"))) void lanes_hw(uint32_t* lane, const uint8_t* p, size_t words) {
  uint64_t c0 = lane[0], c1 = lane[1], c2 = lane[2], c3 = lane[3];
  for (size_t i = 0; i + 4 <= words; i += 4, p += 32) {
    uint64_t w[4];
    std::memcpy(w, p, 32);
    c0 = _mm_crc32_u64(c0, w[0]);
    c1 = _mm_crc32_u64(c1, w[1]);
    c2 = _mm_crc32_u64(c2, w[2]);
    c3 = _mm_crc32_u64(c3, w[3]);
  }
  lane[0] = static_cast<uint32_t>(c0), lane[1] = static_cast<uint32_t>(c1);
  lane[2] = static_cast<uint32_t>(c2), lane[3] = static_cast<uint32_t>(c3);
}
#endif

}  // namespace

void Checksum::update(const uint8_t* p, size_t bytes) {
  const size_t words = bytes / 32 * 4;
#if defined(__x86_64__)
  static const bool hw = __builtin_cpu_supports("sse4.2");
  if (hw) {
    lanes_hw(lane_, p, words);
  } else
#endif
  {
    for (size_t i = 0; i < words; ++i) {
      uint64_t w;
      std::memcpy(&w, p + 8 * i, 8);
      lane_[i % 4] = crc32c_soft(lane_[i % 4], w);
    }
  }
  // The tail (last call only): zero-padded to a whole 32-byte group.
  if (const size_t rest = bytes - words * 8; rest > 0) {
    uint8_t tail[32] = {};
    std::memcpy(tail, p + words * 8, rest);
    for (size_t i = 0; i < 4; ++i) {
      uint64_t w;
      std::memcpy(&w, tail + 8 * i, 8);
      lane_[i] = crc32c_soft(lane_[i], w);
    }
  }
}

namespace {

// a * b modulo the CRC-32C polynomial, both in the reflected bit order the crc32 instruction uses
// (bit 31 is x^0).
uint32_t multiply_mod_p(uint32_t a, uint32_t b) {
  uint32_t product = 0;
  for (uint32_t bit = 1u << 31; bit != 0; bit >>= 1) {
    if (a & bit) product ^= b;
    b = (b >> 1) ^ (0x82F63B78u & (0u - (b & 1u)));  // b * x
  }
  return product;
}

// x^(8 * bytes) modulo the polynomial: what a CRC register is multiplied by when `bytes` zero
// bytes are fed through it.
uint32_t x_to_bytes(uint64_t bytes) {
  uint32_t result = 1u << 31;  // 1
  uint32_t square = 1u << 30;  // x^(2^k), from x
  for (uint64_t e = bytes * 8; e != 0; e >>= 1) {
    if (e & 1) result = multiply_mod_p(result, square);
    square = multiply_mod_p(square, square);
  }
  return result;
}

}  // namespace

Checksum Checksum::continuation() {
  Checksum c;
  for (uint32_t& lane : c.lane_) lane = 0;
  return c;
}

void Checksum::join(const Checksum& next, uint64_t next_bytes) {
  // Each lane sees every fourth 8-byte word: a quarter of next's bytes, its last group padded.
  const uint32_t shift = x_to_bytes((next_bytes + 31) / 32 * 8);
  for (int i = 0; i < 4; ++i) lane_[i] = multiply_mod_p(shift, lane_[i]) ^ next.lane_[i];
}

std::string Checksum::hex() const {
  char out[33];
  std::snprintf(out, sizeof out, "%08x%08x%08x%08x", ~lane_[0], ~lane_[1], ~lane_[2], ~lane_[3]);
  return out;
}

}  // namespace ecgq::mfile
