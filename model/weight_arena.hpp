// WeightArena: the memory a native model keeps its weights in (moved out of ecgfm_model.cpp
// unchanged). Includes ATen: for model/*.cpp only.
#pragma once

#include <ATen/ATen.h>
#include <sys/mman.h>

#include <algorithm>
#include <cstdint>
#include <memory>

#include "model/huge_pages.hpp"

namespace ecgq {

// Memory for the weights that a model keeps, in 64 MiB chunks, on transparent huge pages with
// ECGQ_HUGE_PAGES=1 (see huge_pages.hpp for when they pay). Chunks are unmapped when the last
// tensor in them goes, so an unloaded model returns its memory at once.
class WeightArena {
 public:
  // An uninitialised contiguous tensor in the arena (or from the default allocator when mmap
  // fails).
  at::Tensor empty(at::IntArrayRef shape, at::ScalarType type) {
    int64_t numel = 1;
    for (int64_t d : shape) numel *= d;
    const size_t bytes = (static_cast<size_t>(numel) * at::elementSize(type) + 63) & ~size_t{63};
    if (!chunk_ || used_ + bytes > chunk_->size) {
      if (!new_chunk(std::max(bytes, kChunkBytes))) return at::empty(shape, type);
    }
    char* p = chunk_->base + used_;
    used_ += bytes;
    std::shared_ptr<Chunk> keep = chunk_;
    return at::from_blob(
        p, shape, [keep](void*) {}, at::TensorOptions().dtype(type));
  }

 private:
  static constexpr size_t kHugePage = size_t{2} << 20;
  static constexpr size_t kChunkBytes = size_t{64} << 20;

  struct Chunk {
    void* map = nullptr;
    size_t map_size = 0;
    char* base = nullptr;  // first 2 MiB boundary inside the mapping
    size_t size = 0;
    ~Chunk() {
      if (map != nullptr) munmap(map, map_size);
    }
  };

  bool new_chunk(size_t bytes) {
    const size_t size = (bytes + kHugePage - 1) & ~(kHugePage - 1);
    auto c = std::make_shared<Chunk>();
    c->map_size = size + kHugePage;
    c->map = mmap(nullptr, c->map_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (c->map == MAP_FAILED) {
      c->map = nullptr;
      return false;
    }
    const uintptr_t start = reinterpret_cast<uintptr_t>(c->map);
    c->base = reinterpret_cast<char*>((start + kHugePage - 1) & ~(kHugePage - 1));
    c->size = size;
    if (huge_pages_wanted()) madvise(c->base, c->size, MADV_HUGEPAGE);  // advisory
    chunk_ = std::move(c);
    used_ = 0;
    return true;
  }

  std::shared_ptr<Chunk> chunk_;
  size_t used_ = 0;
};

}  // namespace ecgq
