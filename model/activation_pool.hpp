// Activation memory of the forward pass, reused by size instead of handed back to malloc. Only the
// model's implementation includes this (LibTorch's allocator interface stays out of model.hpp).
#pragma once

#include <cstddef>

namespace ecgq {

// While a Scope lives on a thread, the large CPU tensors LibTorch allocates on that thread come
// from a process-wide pool of blocks (mappings of their own): freed, a block waits for the next
// tensor of about its size instead of going back to malloc, and an idle block smaller than a
// request grows to it (mremap keeps its resident pages). Why: the 12 layers of a pass allocate the
// same sizes over and over, and glibc, starting from a heap that malloc_trim(0) has handed back,
// spread them over fresh pages: a first 8-segment pass took 37,200 first-touch page faults
// (~1.5 us each here), 16,400 with the pool. Blocks not used by a pass are unmapped when its scope
// ends; release() unmaps every idle block (the model calls it when destroyed).
class ActivationPool {
 public:
  // Tensors of at least this many bytes are pooled; smaller ones stay with malloc.
  static constexpr size_t kMinBytes = 64 * 1024;

  // Routes this thread's large CPU allocations to the pool for its lifetime (nestable).
  class Scope {
   public:
    Scope();
    ~Scope();
    Scope(const Scope&) = delete;
    Scope& operator=(const Scope&) = delete;

   private:
    unsigned long generation_;  // the pool's pass counter when this scope began
    bool outer_;                // the outermost scope on this thread
  };

  // Frees every pooled block not in use now; returns the bytes freed.
  static size_t release();

  // Bytes of idle blocks the pool holds (tests, logs).
  static size_t idle_bytes();
};

}  // namespace ecgq
