// CheckpointMapping: a read-only map of a checkpoint's file for the length of one load, so that
// the model packs its projection weights straight from the page cache instead of copying them
// into a buffer first (pread of the 360 MB of a full-size model: ~65 ms of the load).
//
// A map of a file can fault (SIGBUS) when another process truncates it. The map is therefore
// only made under a read lease (file_lease.hpp): a process that opens the file for writing or
// truncates it is held back until the lease goes. When that happens during the load, the map is
// replaced in place by zero pages (no copy) and the lease released at once, so the writer is not
// kept waiting; the load then fails with intact()'s error instead of packing what it read.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "common/status.hpp"
#include "model/checkpoint.hpp"

namespace ecgq::ckpt {

class CheckpointMapping {
 public:
  // Maps the file `checkpoint` reads from under a read lease; nullptr when it cannot, with
  // `why_not` saying why (an in-memory archive, not the file's owner, open for writing...).
  static std::unique_ptr<CheckpointMapping> map(const Checkpoint& checkpoint, std::string* why_not);
  ~CheckpointMapping();
  CheckpointMapping(const CheckpointMapping&) = delete;
  CheckpointMapping& operator=(const CheckpointMapping&) = delete;

  // The bytes of a contiguous `tensor` of `checkpoint` in the map, after the checks read_tensor
  // makes; nullopt for an empty or strided tensor, or one not aligned for its type.
  Expected<std::optional<const void*>> tensor_bytes(const Checkpoint& checkpoint,
                                                    const TensorInfo& tensor) const;
  // Drops the pages of [p, p + n) (bytes tensor_bytes gave) from this process's page tables: the
  // page cache keeps them, so a later read faults them back. The load calls it once a layer is
  // packed, so that the process's RSS holds one layer of the file at a time, not the model.
  void release(const void* p, uint64_t n) const;
  // Ok unless the file was opened for writing or truncated while mapped (what the map showed
  // afterwards was zeros, not the file).
  Status intact() const;

 private:
  // What the lease-break callback, on the lease watcher's thread, shares with the map; the mutex
  // orders the map's publication against a break that arrives while it is being made.
  struct Shared {
    std::mutex mutex;
    void* base = nullptr;
    size_t bytes = 0;
    std::atomic<bool> broken{false};
  };

  CheckpointMapping(std::shared_ptr<Shared> shared, int fd, std::string path)
      : shared_(std::move(shared)), fd_(fd), path_(std::move(path)) {}

  std::shared_ptr<Shared> shared_;
  int fd_;  // the source's descriptor, which carries the lease (not owned)
  std::string path_;
};

}  // namespace ecgq::ckpt
