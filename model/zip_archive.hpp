// The ZIP container of torch checkpoints: a byte-source abstraction (file via pread, or memory)
// and a central-directory reader for archives whose records are all STORED.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/status.hpp"

namespace ecgq::ckpt {

// Random-access bytes: a file read with pread, or an in-memory buffer (tests, fuzzing).
class ByteSource {
 public:
  virtual ~ByteSource() = default;
  // Total number of bytes.
  virtual uint64_t size() const = 0;
  // Copies exactly `n` bytes from `offset` into `dst`; an error if the range is outside the source.
  virtual Status read(uint64_t offset, uint64_t n, void* dst) const = 0;
  // The file path, or "<memory>", for messages.
  virtual const std::string& name() const = 0;
  // The open file (read-only) for mapping, or -1 for memory.
  virtual int descriptor() const { return -1; }
};

// Opens `path` read-only; the descriptor is closed when the last reference goes.
Expected<std::shared_ptr<const ByteSource>> open_file_source(const std::string& path);
// Wraps a copy of `bytes`.
std::shared_ptr<const ByteSource> make_memory_source(std::string bytes);

// One entry of the central directory.
struct ZipRecord {
  std::string name;
  uint64_t size = 0;                 // uncompressed == compressed size (STORED)
  uint64_t local_header_offset = 0;  // where the local header starts
};

// The central directory of a ZIP archive; record data are located lazily via the local header.
class ZipArchive {
 public:
  // Reads the (ZIP64) end-of-central-directory and the central directory; rejects any
  // compressed, encrypted or duplicate entry.
  static Expected<ZipArchive> open(std::shared_ptr<const ByteSource> source);

  // All records in central-directory order.
  const std::vector<ZipRecord>& records() const { return records_; }
  // The record called `name`, or nullptr.
  const ZipRecord* find(const std::string& name) const;
  // Absolute file offset of the first data byte of `record` (reads and checks its local header).
  Expected<uint64_t> data_offset(const ZipRecord& record) const;
  // The whole record, refused when it is larger than `max_size`.
  Expected<std::string> read_record(const ZipRecord& record, uint64_t max_size) const;
  // The underlying bytes.
  const std::shared_ptr<const ByteSource>& source() const { return source_; }
  // Offset of the central directory (record data must end before it).
  uint64_t central_directory_offset() const { return cd_offset_; }

 private:
  std::shared_ptr<const ByteSource> source_;
  std::vector<ZipRecord> records_;
  std::unordered_map<std::string, size_t> index_;
  uint64_t cd_offset_ = 0;
};

}  // namespace ecgq::ckpt
