// Streaming SHA-256 (checkpoint and blob identity) and SHA-1 (git blob ids of non-LFS hub files).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "common/status.hpp"

namespace ecgq {

// Incremental SHA-256: feed bytes with update(), read the digest once with hex_digest().
class Sha256 {
 public:
  Sha256();
  // Adds `size` bytes to the hashed stream.
  void update(const void* data, size_t size);
  // Adds the bytes of a string.
  void update(const std::string& data) { update(data.data(), data.size()); }
  // Finishes the stream and returns the 64-character lowercase hex digest.
  std::string hex_digest();

 private:
  void block(const uint8_t* p);
  uint32_t h_[8];
  uint8_t buf_[64];
  size_t buf_len_ = 0;
  uint64_t total_ = 0;
  bool done_ = false;
  std::string digest_;
};

// Incremental SHA-1, only for git object ids (the hub's ETag of files not stored in LFS).
class Sha1 {
 public:
  Sha1();
  // Adds `size` bytes to the hashed stream.
  void update(const void* data, size_t size);
  // Adds the bytes of a string.
  void update(const std::string& data) { update(data.data(), data.size()); }
  // Finishes the stream and returns the 40-character lowercase hex digest.
  std::string hex_digest();

 private:
  void block(const uint8_t* p);
  uint32_t h_[5];
  uint8_t buf_[64];
  size_t buf_len_ = 0;
  uint64_t total_ = 0;
  bool done_ = false;
  std::string digest_;
};

// SHA-256 hex digest of a string.
std::string sha256_hex(const std::string& data);
// Git blob id of a string: sha1("blob <size>\0" + data).
std::string git_blob_sha1_hex(const std::string& data);

// The hashes of a whole file, computed in one pass.
struct FileHashes {
  std::string sha256;
  std::string git_sha1;  // empty unless requested
  uint64_t size = 0;
};

// Hashes a file in one streaming read; the git blob sha1 too when `with_git_sha1`.
Expected<FileHashes> hash_file(const std::string& path, bool with_git_sha1 = false);
// SHA-256 hex digest of a file (io_error Status naming the path when unreadable).
Expected<std::string> sha256_file(const std::string& path);

}  // namespace ecgq
