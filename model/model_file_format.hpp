// The model file's on-disk header and the helpers its reader (model_file.cpp) and writer
// (model_file_write.cpp) share. Internal to model/.
#pragma once

#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "model/model_file.hpp"

namespace ecgq::mfile {

// The fixed header at offset 0 (little-endian); the rest of page 0 is zero. The checksum covers
// the whole file with its own field zeroed.
struct Header {
  char magic[8];
  uint32_t version;
  uint32_t header_bytes;
  uint64_t file_size;
  uint64_t contents_offset;
  uint64_t contents_bytes;
  uint64_t data_offset;
  char checksum[32];  // Checksum::hex()
};
static_assert(sizeof(Header) == 80);

// Bytes read or written per call (a multiple of 32: the checksum sums whole 32-byte groups).
constexpr size_t kChunk = size_t{4} << 20;

// A file descriptor closed on scope exit.
struct Fd {
  int fd = -1;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

// n rounded up to a multiple of `to`.
inline uint64_t round_up(uint64_t n, uint64_t to) {
  return (n + to - 1) / to * to;
}

// The table of contents as text, one entry per line.
std::string contents_text(const Contents& c);

}  // namespace ecgq::mfile
