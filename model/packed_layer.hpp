// The four projections of one transformer layer with pre-packed weights (PackedLinear), with the
// bias, GELU and residual adds fused into the products.
#pragma once

#include <ATen/core/Tensor.h>

#include <memory>

#include "common/status.hpp"
#include "model/packed_linear.hpp"

namespace ecgq {

// One encoder layer's q/k/v, out, fc1 and fc2 projections on oneDNN with packed weights.
class PackedLayer {
 public:
  // The layer's fp32 weights ([3E, E] q/k/v stacked, [E, E], [F, E], [E, F]) and biases, which
  // must outlive the layer; bf16 packs them as bf16 (split: hi + lo, ~16-bit weights).
  struct Weights {
    at::Tensor qkv_w, qkv_b, out_w, out_b, fc1_w, fc1_b, fc2_w, fc2_b;
  };
  // Packs the four projections into memory from `allocate`.
  static Expected<std::unique_ptr<PackedLayer>> pack(const Weights& w, bool bf16, bool split,
                                                     const PackedLinear::Allocate& allocate);

  // oneDNN's kernel for the packed layout (e.g. "brg:avx512_core_bf16").
  const std::string& implementation() const { return fc1_->implementation(); }
  // x Wqkv^T + bqkv: [.., 3E], fp32 (bf16 in bf16 mode: the attention products' input).
  at::Tensor qkv(const at::Tensor& x) const { return qkv_->run(x); }
  // residual + o Wout^T + bout.
  at::Tensor out(const at::Tensor& o, const at::Tensor& residual) const {
    return out_->run(o, &residual);
  }
  // residual + fc2(gelu(fc1(x))); in bf16 the GELU output is written as bf16 (the rounding fc2's
  // input needs anyway).
  at::Tensor feed_forward(const at::Tensor& x, const at::Tensor& residual) const {
    return fc2_->run(fc1_->run(x), &residual);
  }

 private:
  PackedLayer() = default;
  std::unique_ptr<PackedLinear> qkv_, out_, fc1_, fc2_;
};

}  // namespace ecgq
