// WeightReader: reads a checkpoint's tensors by name into float32 buffers (moved out of
// ecgfm_model.cpp unchanged). Includes ATen: for model/*.cpp only.
#pragma once

#include <ATen/ATen.h>

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/status.hpp"
#include "model/checkpoint.hpp"
#include "model/checkpoint_mapping.hpp"
#include "model/weight_arena.hpp"

namespace ecgq {

namespace weight_reader_detail {

inline at::ScalarType scalar_type(ckpt::DType d, bool* ok) {
  *ok = true;
  switch (d) {
    case ckpt::DType::F32:
      return at::kFloat;
    case ckpt::DType::F64:
      return at::kDouble;
    case ckpt::DType::F16:
      return at::kHalf;
    case ckpt::DType::BF16:
      return at::kBFloat16;
    default:
      *ok = false;
      return at::kFloat;
  }
}

}  // namespace weight_reader_detail

// Reads tensors of one checkpoint by name into caller-provided float32 buffers.
class WeightReader {
 public:
  WeightReader(const ckpt::Checkpoint& c, WeightArena* arena) : c_(c), arena_(arena) {
    for (const auto& t : c.tensors) by_name_[t.name] = &t;
  }

  // A new float32 tensor holding checkpoint tensor `name`: in the arena, or from the default
  // allocator when `temporary` (it is converted or folded and then dropped).
  Expected<at::Tensor> get(const std::string& name, bool temporary = false) {
    ASSIGN_OR_RETURN(const ckpt::TensorInfo* info, find(name));
    at::Tensor t = temporary ? temporary_.empty(info->shape, at::kFloat)
                             : arena_->empty(info->shape, at::kFloat);
    RETURN_IF_ERROR(read_into(*info, t));
    return t;
  }

  // Fills the contiguous float32 tensor `dst` (same element count) with tensor `name`.
  Status read_into(const std::string& name, at::Tensor dst) {
    ASSIGN_OR_RETURN(const ckpt::TensorInfo* info, find(name));
    return read_into(*info, dst);
  }

  // Maps the checkpoint's file for view() until the reader goes (checkpoint_mapping.hpp); when it
  // cannot, view() finds nothing and the weights are read. Returns why not, or "".
  std::string map_file() {
    std::string why_not;
    mapping_ = ckpt::CheckpointMapping::map(c_, &why_not);
    return why_not;
  }

  // Float32 tensor `name`, shaped `shape`, read-only in the file's map: for weights that are
  // packed and dropped before the reader goes. Nullopt when it must be read instead (no map,
  // another type, a strided view).
  Expected<std::optional<at::Tensor>> view(const std::string& name, at::IntArrayRef shape) {
    ASSIGN_OR_RETURN(const ckpt::TensorInfo* info, find(name));
    const ckpt::TensorInfo& t = *info;
    if (!mapping_ || t.dtype != ckpt::DType::F32) return std::optional<at::Tensor>();
    const int64_t numel = c10::multiply_integers(shape);
    if (static_cast<int64_t>(ckpt::tensor_numel(t)) != numel)
      return bad_tensor(t, "element count differs from the expected shape");
    ASSIGN_OR_RETURN(auto bytes, mapping_->tensor_bytes(c_, t));
    if (!bytes) return std::optional<at::Tensor>();
    viewed_.emplace_back(*bytes, static_cast<uint64_t>(numel) * sizeof(float));
    // from_blob wants a mutable pointer; the map is PROT_READ and its users only read.
    return std::optional<at::Tensor>(
        at::from_blob(const_cast<void*>(*bytes), shape, at::TensorOptions(at::kFloat)));
  }

  // Drops the pages of every view given so far from the process's page tables (the page cache
  // keeps them): for a caller that has packed and dropped those views.
  void release_views() {
    for (const auto& [p, n] : viewed_) mapping_->release(p, n);
    viewed_.clear();
  }

  // Ok unless the mapped file was written or truncated during the load.
  Status intact() const { return mapping_ ? mapping_->intact() : Status::Ok(); }

 private:
  // Checkpoint tensor `name`, or the error naming it missing.
  Expected<const ckpt::TensorInfo*> find(const std::string& name) const {
    auto it = by_name_.find(name);
    if (it == by_name_.end())
      return Status(ErrorCode::BadCheckpoint, "missing tensor '" + name + "'", "checkpoint");
    return it->second;
  }

  static Status bad_tensor(const ckpt::TensorInfo& t, const std::string& why) {
    return Status(ErrorCode::BadCheckpoint, "tensor '" + t.name + "': " + why, "checkpoint");
  }

  // Fills the contiguous float32 tensor `dst` with checkpoint tensor `t`. ckpt::read_tensor (the
  // one reader of tensor bytes, also fuzzed) validates the view and gathers it in row-major order;
  // other float types are converted here.
  Status read_into(const ckpt::TensorInfo& t, at::Tensor dst) {
    auto fail = [&](const std::string& why) { return bad_tensor(t, why); };
    bool ok = false;
    const at::ScalarType st = weight_reader_detail::scalar_type(t.dtype, &ok);
    if (!ok)
      return fail(std::string("dtype ") + ckpt::dtype_name(t.dtype) + " is not a float type");
    if (t.shape.size() != t.stride.size()) return fail("shape and stride ranks differ");
    if (static_cast<int64_t>(ckpt::tensor_numel(t)) != dst.numel())
      return fail("element count differs from the expected shape");
    // The common case: one read straight into the final buffer.
    if (st == at::kFloat) return ckpt::read_tensor(c_, t, dst.data_ptr());
    at::Tensor tmp = at::empty(t.shape, st);
    RETURN_IF_ERROR(ckpt::read_tensor(c_, t, tmp.data_ptr()));
    dst.view(t.shape).copy_(tmp);
    return Status::Ok();
  }

  const ckpt::Checkpoint& c_;
  WeightArena* arena_;
  std::unique_ptr<ckpt::CheckpointMapping> mapping_;      // while map_file() holds the file
  std::vector<std::pair<const void*, uint64_t>> viewed_;  // views given since release_views()
  // Temporaries get their own arena, unmapped with the reader: from malloc they could stay
  // resident after the load.
  WeightArena temporary_;
  std::map<std::string, const ckpt::TensorInfo*> by_name_;
};

}  // namespace ecgq
