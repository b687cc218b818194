#include "model/checkpoint_mapping.hpp"

#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <mutex>
#include <set>

#include "model/file_lease.hpp"
#include "model/zip_archive.hpp"

namespace ecgq::ckpt {
namespace {

// Descriptors mapped by a live CheckpointMapping: a lease belongs to the open file, so a second
// load of the same open checkpoint reads with pread rather than share (and release) the lease.
std::mutex mapped_mutex;
std::set<int> mapped_descriptors;

}  // namespace

std::unique_ptr<CheckpointMapping> CheckpointMapping::map(const Checkpoint& checkpoint,
                                                          std::string* why_not) {
  const int fd = checkpoint.source ? checkpoint.source->descriptor() : -1;
  if (fd < 0) {
    *why_not = "not read from a file";
    return nullptr;
  }
  if (mfile::mapping_disabled()) {
    *why_not = "ECGQ_MODEL_MAP=0";
    return nullptr;
  }
  // The size it was parsed at; the lease held, fstat checks the file still has it.
  const size_t bytes = static_cast<size_t>(checkpoint.file_size);
  {
    std::lock_guard<std::mutex> lock(mapped_mutex);
    if (!mapped_descriptors.insert(fd).second) {
      *why_not = "another load has it mapped";
      return nullptr;
    }
  }
  auto shared = std::make_shared<Shared>();
  auto forget = [fd] {
    std::lock_guard<std::mutex> lock(mapped_mutex);
    mapped_descriptors.erase(fd);
  };
  // The lease first: without it a truncation could fault the map. On a break, zero pages take
  // the file's place (MAP_FIXED replaces the map atomically) before the writer may go on.
  *why_not = mfile::FileLease::hold(fd, [shared] {
    std::lock_guard<std::mutex> lock(shared->mutex);
    if (shared->base != nullptr)
      ::mmap(shared->base, shared->bytes, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1,
             0);
    shared->broken = true;
    return true;
  });
  if (!why_not->empty()) {
    forget();
    return nullptr;
  }
  struct stat st {};
  void* base = MAP_FAILED;
  if (::fstat(fd, &st) != 0 || static_cast<size_t>(st.st_size) != bytes)
    *why_not = "the file changed size before it was leased";
  else if ((base = ::mmap(nullptr, bytes, PROT_READ, MAP_SHARED, fd, 0)) == MAP_FAILED)
    *why_not = std::string("mmap: ") + std::strerror(errno);
  {
    std::lock_guard<std::mutex> lock(shared->mutex);
    if (base != MAP_FAILED && !shared->broken) {
      shared->base = base;
      shared->bytes = bytes;
      return std::unique_ptr<CheckpointMapping>(
          new CheckpointMapping(std::move(shared), fd, checkpoint.source->name()));
    }
  }
  // Broken while being made, or not made: nothing was read from the map.
  if (why_not->empty()) *why_not = "the file was opened for writing while being mapped";
  mfile::FileLease::release(fd);
  if (base != MAP_FAILED) ::munmap(base, bytes);
  forget();
  return nullptr;
}

CheckpointMapping::~CheckpointMapping() {
  // After release no break callback runs (it takes the lease registry's lock), so the map can go.
  mfile::FileLease::release(fd_);
  ::munmap(shared_->base, shared_->bytes);
  std::lock_guard<std::mutex> lock(mapped_mutex);
  mapped_descriptors.erase(fd_);
}

Expected<std::optional<const void*>> CheckpointMapping::tensor_bytes(
    const Checkpoint& checkpoint, const TensorInfo& tensor) const {
  ASSIGN_OR_RETURN(auto offset, contiguous_file_offset(checkpoint, tensor));
  const uint64_t element = dtype_size(tensor.dtype);
  if (!offset || *offset % element != 0) return std::optional<const void*>();
  const uint64_t n = tensor_numel(tensor) * element;
  if (*offset > shared_->bytes || n > shared_->bytes - *offset)
    return Status(ErrorCode::BadCheckpoint,
                  path_ + ": tensor '" + tensor.name + "' lies past the end of the file",
                  "checkpoint");
  return std::optional<const void*>(static_cast<const char*>(shared_->base) + *offset);
}

void CheckpointMapping::release(const void* p, uint64_t n) const {
  // Whole pages inside the range only: a page shared with a tensor still to come stays.
  const uintptr_t page = static_cast<uintptr_t>(::sysconf(_SC_PAGESIZE));
  const uintptr_t begin = (reinterpret_cast<uintptr_t>(p) + page - 1) & ~(page - 1);
  const uintptr_t end = (reinterpret_cast<uintptr_t>(p) + n) & ~(page - 1);
  std::lock_guard<std::mutex> lock(shared_->mutex);  // not while a break replaces the map
  if (end > begin && !shared_->broken)
    ::madvise(reinterpret_cast<void*>(begin), end - begin, MADV_DONTNEED);
}

Status CheckpointMapping::intact() const {
  if (!shared_->broken) return Status::Ok();
  return Status(ErrorCode::IoError,
                path_ +
                    ": the checkpoint was opened for writing or truncated while its weights were "
                    "being read; load it again once it is complete",
                "checkpoint");
}

}  // namespace ecgq::ckpt
