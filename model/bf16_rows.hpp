// The packing source of a split bf16 projection's weights, hi + lo. Only the model's implementation
// includes this.
#pragma once

#include <ATen/core/Tensor.h>

namespace ecgq {

// The packing source of a split projection's weights: [N, 2K] fp32 holding, per row, hi =
// bf16(w) then lo = w - hi (both exact in fp32), from `w` [N, K] fp32 (rounded as c10::BFloat16
// rounds), or from w = hi bf16 with its low part `lo` [N, K] bf16 (a model file's). One parallel
// pass instead of five ATen ops and their four fresh buffers. Written into the memory of the
// thread's SplitSourceReuse when one is in scope (valid until the next call), else new memory.
at::Tensor split_weight_source(const at::Tensor& w, const at::Tensor& lo);

// While in scope, split_weight_source on this thread reuses one buffer (grown as needed) instead
// of fresh memory for every projection: a fresh page costs about 1.2 us on our VMs, 75 ms of a
// bf16 load's 6 split layers and positional conv. A load holds one; scopes nest.
class SplitSourceReuse {
 public:
  SplitSourceReuse();
  ~SplitSourceReuse();
  SplitSourceReuse(const SplitSourceReuse&) = delete;
  SplitSourceReuse& operator=(const SplitSourceReuse&) = delete;

 private:
  friend at::Tensor split_weight_source(const at::Tensor& w, const at::Tensor& lo);
  at::Tensor buffer_;                  // fp32, the largest source so far
  SplitSourceReuse* outer_ = nullptr;  // the scope this one hides
};

}  // namespace ecgq
