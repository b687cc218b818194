// FIPS 180-4 SHA-256 and SHA-1; small and dependency-free so the common library stays torch- and
// OpenSSL-free.
#include "common/sha256.hpp"

#include <cpuid.h>
#include <immintrin.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

namespace ecgq {
namespace {

constexpr uint32_t kK256[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};

inline uint32_t rotr(uint32_t x, int n) {
  return (x >> n) | (x << (32 - n));
}
inline uint32_t rotl(uint32_t x, int n) {
  return (x << n) | (x >> (32 - n));
}
inline uint32_t load_be32(const uint8_t* p) {
  return (uint32_t(p[0]) << 24) | (uint32_t(p[1]) << 16) | (uint32_t(p[2]) << 8) | uint32_t(p[3]);
}

std::string to_hex(const uint32_t* words, int n) {
  static const char* digits = "0123456789abcdef";
  std::string out;
  out.reserve(n * 8);
  for (int i = 0; i < n; ++i) {
    for (int shift = 28; shift >= 0; shift -= 4) out.push_back(digits[(words[i] >> shift) & 0xf]);
  }
  return out;
}

// Shared Merkle-Damgard buffering for both hashes (64-byte blocks, big-endian length).
template <typename Block>
void feed(uint8_t* buf, size_t& buf_len, uint64_t& total, const void* data, size_t size,
          Block&& block) {
  const auto* p = static_cast<const uint8_t*>(data);
  total += size;
  if (buf_len > 0) {
    size_t take = std::min(size, size_t(64) - buf_len);
    std::memcpy(buf + buf_len, p, take);
    buf_len += take;
    p += take;
    size -= take;
    if (buf_len == 64) {
      block(buf);
      buf_len = 0;
    }
  }
  while (size >= 64) {
    block(p);
    p += 64;
    size -= 64;
  }
  if (size > 0) {
    std::memcpy(buf, p, size);
    buf_len = size;
  }
}

template <typename Block>
void pad(uint8_t* buf, size_t& buf_len, uint64_t total, Block&& block) {
  uint64_t bits = total * 8;
  buf[buf_len++] = 0x80;
  if (buf_len > 56) {
    std::memset(buf + buf_len, 0, 64 - buf_len);
    block(buf);
    buf_len = 0;
  }
  std::memset(buf + buf_len, 0, 56 - buf_len);
  for (int i = 0; i < 8; ++i) buf[56 + i] = uint8_t(bits >> (56 - 8 * i));
  block(buf);
  buf_len = 0;
}

// SHA-256 with the x86 SHA extensions (4-6x the portable code); used when the CPU has them.
__attribute__((target("sha,sse4.1"))) void sha256_block_shani(uint32_t state[8],
                                                              const uint8_t* data) {
  const __m128i kMask = _mm_set_epi64x(0x0c0d0e0f08090a0bULL, 0x0405060700010203ULL);
  __m128i tmp = _mm_loadu_si128(reinterpret_cast<const __m128i*>(&state[0]));
  __m128i state1 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(&state[4]));
  tmp = _mm_shuffle_epi32(tmp, 0xB1);                // CDAB
  state1 = _mm_shuffle_epi32(state1, 0x1B);          // EFGH
  __m128i state0 = _mm_alignr_epi8(tmp, state1, 8);  // ABEF
  state1 = _mm_blend_epi16(state1, tmp, 0xF0);       // CDGH
  const __m128i abef_save = state0;
  const __m128i cdgh_save = state1;
  __m128i w[4];
  for (int g = 0; g < 16; ++g) {
    __m128i cur;
    if (g < 4) {
      cur =
          _mm_shuffle_epi8(_mm_loadu_si128(reinterpret_cast<const __m128i*>(data + 16 * g)), kMask);
    } else {
      // W[t] = s1(W[t-2]) + W[t-7] + s0(W[t-15]) + W[t-16], four words at a time.
      __m128i x = _mm_sha256msg1_epu32(w[g % 4], w[(g + 1) % 4]);
      x = _mm_add_epi32(x, _mm_alignr_epi8(w[(g + 3) % 4], w[(g + 2) % 4], 4));
      cur = _mm_sha256msg2_epu32(x, w[(g + 3) % 4]);
    }
    w[g % 4] = cur;
    __m128i msg =
        _mm_add_epi32(cur, _mm_loadu_si128(reinterpret_cast<const __m128i*>(&kK256[4 * g])));
    state1 = _mm_sha256rnds2_epu32(state1, state0, msg);
    msg = _mm_shuffle_epi32(msg, 0x0E);
    state0 = _mm_sha256rnds2_epu32(state0, state1, msg);
  }
  state0 = _mm_add_epi32(state0, abef_save);
  state1 = _mm_add_epi32(state1, cdgh_save);
  tmp = _mm_shuffle_epi32(state0, 0x1B);        // FEBA
  state1 = _mm_shuffle_epi32(state1, 0xB1);     // DCHG
  state0 = _mm_blend_epi16(tmp, state1, 0xF0);  // DCBA
  state1 = _mm_alignr_epi8(state1, tmp, 8);     // HGFE
  _mm_storeu_si128(reinterpret_cast<__m128i*>(&state[0]), state0);
  _mm_storeu_si128(reinterpret_cast<__m128i*>(&state[4]), state1);
}

bool cpu_has_shani() {
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx)) return false;
  bool sse41 = (ecx & bit_SSE4_1) != 0;
  if (!__get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx)) return false;
  return sse41 && (ebx & (1u << 29)) != 0;
}

// ECGQ_SHA256_PORTABLE=1 forces the portable code (tests compare both).
bool use_shani() {
  static const bool use = cpu_has_shani() && !std::getenv("ECGQ_SHA256_PORTABLE");
  return use;
}

}  // namespace

Sha256::Sha256()
    : h_{0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
         0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19} {}

void Sha256::block(const uint8_t* p) {
  if (use_shani()) return sha256_block_shani(h_, p);
  uint32_t w[64];
  for (int i = 0; i < 16; ++i) w[i] = load_be32(p + 4 * i);
  for (int i = 16; i < 64; ++i) {
    uint32_t s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >> 3);
    uint32_t s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >> 10);
    w[i] = w[i - 16] + s0 + w[i - 7] + s1;
  }
  uint32_t a = h_[0], b = h_[1], c = h_[2], d = h_[3], e = h_[4], f = h_[5], g = h_[6], h = h_[7];
  for (int i = 0; i < 64; ++i) {
    uint32_t S1 = rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25);
    uint32_t ch = (e & f) ^ (~e & g);
    uint32_t t1 = h + S1 + ch + kK256[i] + w[i];
    uint32_t S0 = rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22);
    uint32_t maj = (a & b) ^ (a & c) ^ (b & c);
    uint32_t t2 = S0 + maj;
    h = g;
    g = f;
    f = e;
    e = d + t1;
    d = c;
    c = b;
    b = a;
    a = t1 + t2;
  }
  h_[0] += a;
  h_[1] += b;
  h_[2] += c;
  h_[3] += d;
  h_[4] += e;
  h_[5] += f;
  h_[6] += g;
  h_[7] += h;
}

void Sha256::update(const void* data, size_t size) {
  if (done_) return;
  feed(buf_, buf_len_, total_, data, size, [this](const uint8_t* p) { block(p); });
}

std::string Sha256::hex_digest() {
  if (!done_) {
    pad(buf_, buf_len_, total_, [this](const uint8_t* p) { block(p); });
    digest_ = to_hex(h_, 8);
    done_ = true;
  }
  return digest_;
}

Sha1::Sha1() : h_{0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0} {}

void Sha1::block(const uint8_t* p) {
  uint32_t w[80];
  for (int i = 0; i < 16; ++i) w[i] = load_be32(p + 4 * i);
  for (int i = 16; i < 80; ++i) w[i] = rotl(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
  uint32_t a = h_[0], b = h_[1], c = h_[2], d = h_[3], e = h_[4];
  for (int i = 0; i < 80; ++i) {
    uint32_t f, k;
    if (i < 20) {
      f = (b & c) | (~b & d);
      k = 0x5A827999;
    } else if (i < 40) {
      f = b ^ c ^ d;
      k = 0x6ED9EBA1;
    } else if (i < 60) {
      f = (b & c) | (b & d) | (c & d);
      k = 0x8F1BBCDC;
    } else {
      f = b ^ c ^ d;
      k = 0xCA62C1D6;
    }
    uint32_t t = rotl(a, 5) + f + e + k + w[i];
    e = d;
    d = c;
    c = rotl(b, 30);
    b = a;
    a = t;
  }
  h_[0] += a;
  h_[1] += b;
  h_[2] += c;
  h_[3] += d;
  h_[4] += e;
}

void Sha1::update(const void* data, size_t size) {
  if (done_) return;
  feed(buf_, buf_len_, total_, data, size, [this](const uint8_t* p) { block(p); });
}

std::string Sha1::hex_digest() {
  if (!done_) {
    pad(buf_, buf_len_, total_, [this](const uint8_t* p) { block(p); });
    digest_ = to_hex(h_, 5);
    done_ = true;
  }
  return digest_;
}

std::string sha256_hex(const std::string& data) {
  Sha256 h;
  h.update(data);
  return h.hex_digest();
}

std::string git_blob_sha1_hex(const std::string& data) {
  Sha1 h;
  std::string header = "blob " + std::to_string(data.size());
  h.update(header.data(), header.size() + 1);  // includes the terminating NUL
  h.update(data);
  return h.hex_digest();
}

Expected<FileHashes> hash_file(const std::string& path, bool with_git_sha1) {
  FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) {
    return Status(ErrorCode::IoError,
                  "cannot open " + path + " for hashing: " + std::strerror(errno));
  }
  FileHashes out;
  Sha256 sha256;
  Sha1 sha1;
  if (with_git_sha1) {
    // The git header needs the size up front.
    std::fseek(f, 0, SEEK_END);
    long size = std::ftell(f);
    std::fseek(f, 0, SEEK_SET);
    std::string header = "blob " + std::to_string(size);
    sha1.update(header.data(), header.size() + 1);
  }
  std::vector<char> buf(1 << 20);
  size_t n;
  while ((n = std::fread(buf.data(), 1, buf.size(), f)) > 0) {
    sha256.update(buf.data(), n);
    if (with_git_sha1) sha1.update(buf.data(), n);
    out.size += n;
  }
  bool failed = std::ferror(f) != 0;
  int err = errno;
  std::fclose(f);
  if (failed)
    return Status(ErrorCode::IoError, "error reading " + path + ": " + std::strerror(err));
  out.sha256 = sha256.hex_digest();
  if (with_git_sha1) out.git_sha1 = sha1.hex_digest();
  return out;
}

Expected<std::string> sha256_file(const std::string& path) {
  ASSIGN_OR_RETURN(auto h, hash_file(path, false));
  return h.sha256;
}

}  // namespace ecgq
