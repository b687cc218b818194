// A non-executing pickle VM (protocols 0-5) for torch checkpoints: builds plain values, tensor
// and storage references, and opaque placeholders for everything else.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "common/status.hpp"
#include "model/pickle_value.hpp"

namespace ecgq::ckpt {

// Resource caps; a real 1 GB checkpoint needs a few tens of thousands of nodes.
struct PickleLimits {
  size_t max_nodes = size_t(1) << 22;  // objects created
  size_t max_items = size_t(1) << 24;  // references stored in containers, in total
  size_t max_stack = size_t(1) << 20;  // values on the stack
  size_t max_marks = size_t(1) << 20;  // open MARKs
  size_t max_memo = size_t(1) << 20;   // memo entries
  size_t max_global_name = 1024;       // module or attribute name of a GLOBAL
  size_t max_storage_key = 256;        // storage key length
  size_t max_dims = 64;                // tensor rank
};

// The object graph of one pickle and the index of the object STOP returned.
struct PickleResult {
  PyHeap heap;
  uint32_t root = PyHeap::kNone;
};

// Runs `data`; `where` (the record name) and `file_offset` (absolute offset of data[0]) go into
// error messages, which also name the opcode and its position.
Expected<PickleResult> run_pickle(std::string_view data, const std::string& where,
                                  uint64_t file_offset, const PickleLimits& limits = {});

}  // namespace ecgq::ckpt
