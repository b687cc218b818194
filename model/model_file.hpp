// The compact model file `ecgq-worker export` writes (docs/model-file.md): a fixed header, a text
// table of contents (precision, source checkpoint sha256, architecture, labels, tensors) and the
// weights, each tensor starting on a page boundary in the plain row-major layout of its dtype.
// Torch-free: the container only; model/ecgfm_export.cpp turns it into a model.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/status.hpp"

namespace ecgq::mfile {

// The first 8 bytes of every model file: how `load_model` tells it from a checkpoint.
inline constexpr char kMagic[8] = {'E', 'C', 'G', 'Q', 'M', 'O', 'D', 'L'};
// The format this build writes; it reads this one and kOldestReadable on (version 2 added packed
// tensors: a `layout` on u8 entries; version 3 stores a split projection as its two terms, hi then
// lo, each packed at the unsplit depth, under a layout starting "pair;", where version 2 packed
// one [hi; lo] array of twice the depth, which loads repacked).
inline constexpr uint32_t kFormatVersion = 3;
inline constexpr uint32_t kOldestReadable = 1;
// Alignment of the table of contents and of every tensor in the file (and in memory).
inline constexpr uint64_t kPage = 4096;

// One tensor: where its bytes are and what they hold.
struct TensorEntry {
  std::string name;
  std::string dtype;  // "f32", "bf16", or "u8" for packed bytes
  std::vector<int64_t> shape;
  uint64_t offset = 0;  // from the start of the file, a multiple of kPage
  uint64_t bytes = 0;   // numel * element size
  // Empty: plain row-major. Else the packed layout the bytes are in (one line of text without
  // spaces, DnnlCpu::layout_text), on a u8 entry of shape [bytes]; the model reads it.
  std::string layout;
};

// The table of contents.
struct Contents {
  uint32_t version = kFormatVersion;          // of the file read (the header's)
  std::string precision;                      // "fp32" or "bf16"
  std::string source_sha256;                  // the checkpoint the file was made from
  std::string source_name;                    // its file name, for people
  std::map<std::string, std::string> fields;  // architecture and options ("arch.layers" ...)
  std::vector<std::string> labels;
  std::vector<TensorEntry> tensors;

  // The entry named `name`, or nullptr.
  const TensorEntry* find(const std::string& name) const;
};

// A verified model file in memory: read into private anonymous memory, or mapped read-only from
// the page cache under a read lease (map_model_file), the mapping replaced by a private copy
// before anyone may change the file. Either way, replacing or truncating the file afterwards
// cannot touch the bytes.
class Image {
 public:
  // Takes an anonymous mapping of `map_bytes` at `map` whose first `size` bytes are the file.
  Image(void* map, size_t map_bytes, size_t size, Contents contents);
  // Takes a read-only shared mapping of file `fd` (closed with the image) held under a lease.
  Image(void* map, size_t map_bytes, size_t size, Contents contents, int leased_fd);
  ~Image();
  Image(const Image&) = delete;
  Image& operator=(const Image&) = delete;

  // The file's bytes.
  const uint8_t* data() const { return static_cast<const uint8_t*>(map_); }
  size_t size() const { return size_; }
  const Contents& contents() const { return contents_; }
  // The bytes of tensor `e` (checked at load to lie inside the file, apart from every other).
  const void* tensor_data(const TensorEntry& e) const { return data() + e.offset; }
  // Gives the pages of tensor `e` back to the system (an anonymous image then reads zeros there,
  // a mapped one the file again): for the
  // model once it holds its own copy of the tensor, so that a weight is not resident twice.
  void release(const TensorEntry& e) const;

  // Images alive in this process (tests: a packed load keeps none).
  static int64_t alive();
  // Replaces the mapping by a private copy at the same address (the lease watcher, when another
  // process asks for the file for writing: it waits until this returns); false when there was
  // no memory for the copy (the mapping is unchanged).
  bool make_private() const;
  // True when the load did not sum the file again: this process had verified the same file,
  // unchanged since (map_model_file).
  bool checksum_reused() const { return checksum_reused_; }

 private:
  void* map_;
  size_t map_bytes_;
  size_t size_;
  Contents contents_;
  int leased_fd_ = -1;
  mutable bool copied_ = false;
  bool checksum_reused_ = false;

  friend Expected<std::shared_ptr<const Image>> map_model_file(const std::string& path,
                                                               std::string* why_not);
};

// Maps a model file read-only from the page cache under a read lease and verifies it as
// read_model_file does (no copy: cold start is mapping and checking). A file this process has
// mapped and verified before, with the same device, inode, size, modification and change times
// now that the lease is held, is not summed again (any write or truncation moves its change
// time, which no one can set back): an asleep worker's wake saves ~15 ms of 275 MB. An image that
// is null means the file cannot be mapped safely here (no lease: another owner, open for writing, a
// file system without leases, or ECGQ_MODEL_MAP=0), with the reason in `why_not`: read it.
Expected<std::shared_ptr<const Image>> map_model_file(const std::string& path,
                                                      std::string* why_not);

// One tensor to write: its description (offset is assigned) and its bytes.
struct TensorSource {
  TensorEntry entry;
  const void* data = nullptr;
};

// True when the file at `path` starts with kMagic (a model file of any version).
bool has_magic(const std::string& path);

// Reads, verifies (magic, version, size, checksum) and parses a model file; errors
// (bad_checkpoint) name the file and what is wrong: truncated, altered, other version...
Expected<std::shared_ptr<const Image>> read_model_file(const std::string& path);

// Called with a model file's table of contents before its tensors are read.
using StreamStart = std::function<Status(const Contents&)>;
// Called with each tensor's bytes, in file order; the bytes are valid during the call only.
using StreamTensor = std::function<Status(const TensorEntry&, const void* bytes)>;

// Where a tensor's bytes should be read to: memory of at least its `bytes` the caller keeps, or
// nullptr for the reader's own buffer.
using StreamPlace = std::function<void*(const TensorEntry&)>;

// Reads a model file front to back through one buffer the size of its largest tensor, checking
// it as read_model_file does (the table of contents before `start`, the checksum at the end) and
// handing each tensor to `tensor`: the load holds no image of the file. A tensor `place` gives
// memory for is read straight into it (no copy through the buffer). The checksum is known only
// at the end: on any error, drop whatever the callbacks built.
Status stream_model_file(const std::string& path, const StreamStart& start,
                         const StreamTensor& tensor, const StreamPlace& place = nullptr);

// The table of contents only (header and contents checked, weights not read): for the worker's
// preflight, which names the model before loading it.
Expected<Contents> peek_model_file(const std::string& path);

// Writes a model file at `path` (through a temporary file renamed into place).
Status write_model_file(const std::string& path, Contents contents,
                        const std::vector<TensorSource>& tensors);

// The checksum the header carries: CRC-32C over four interleaved lanes of 8-byte words, as 32
// hex digits. `bytes` is a multiple of 32 except for the last call (exposed for the tests).
class Checksum {
 public:
  void update(const uint8_t* p, size_t bytes);
  std::string hex() const;

  // A sum to be continued from another's end: its lanes start at zero; join() puts it after.
  static Checksum continuation();
  // This sum followed by `next` (a continuation() over `next_bytes`; this one's over a multiple
  // of 32): the sum
  // of both pieces as one (CRC is linear: shift this one's lanes past next's bytes, add next's),
  // so that pieces of a file can be summed on several threads.
  void join(const Checksum& next, uint64_t next_bytes);

 private:
  uint32_t lane_[4] = {~0u, ~0u, ~0u, ~0u};
};

}  // namespace ecgq::mfile
