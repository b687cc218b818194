// The four projections of one transformer layer with pre-packed weights (PackedLinear), with the
// bias, GELU and residual adds fused into the products.
#pragma once

#include <ATen/core/Tensor.h>

#include <functional>
#include <memory>
#include <vector>

#include "common/status.hpp"
#include "model/packed_linear.hpp"
#include "model/packed_linear_int8.hpp"

namespace ecgq {

// One encoder layer's q/k/v, out, fc1 and fc2 projections on oneDNN with packed weights.
class PackedLayer {
 public:
  // The layer's fp32 weights ([3E, E] q/k/v stacked, [E, E], [F, E], [E, F]) and biases, which
  // must outlive the layer; bf16 packs them as bf16 (split: hi + lo, ~16-bit weights). A model
  // file's bf16 weights are already rounded: then the *_lo are their low parts when split.
  // A projection whose prepacked bytes are given (a model file's packed layout) is adopted from
  // them and needs no *_w / *_lo.
  struct Weights {
    at::Tensor qkv_w, qkv_b, out_w, out_b, fc1_w, fc1_b, fc2_w, fc2_b;
    at::Tensor qkv_lo, out_lo, fc1_lo, fc2_lo;
    PackedLinear::Prepacked qkv_p, out_p, fc1_p, fc2_p;
  };
  // The projections' names in a model file ("qkv", "out", "fc1", "fc2"), in order.
  static const char* const kProjections[4];
  // Packs the four projections into memory from `allocate`; with `int8`, those the plan names
  // in int8 (the others bf16, unsplit).
  static Expected<std::unique_ptr<PackedLayer>> pack(const Weights& w, bool bf16, bool split,
                                                     const PackedLinear::Allocate& allocate,
                                                     const Int8Plan* int8 = nullptr);

  // oneDNN's kernel for the packed layout (e.g. "brg:avx512_core_bf16").
  const std::string& implementation() const {
    return fc1_8_ ? fc1_8_->implementation() : fc1_->implementation();
  }
  // The four projections' packed weights, in kProjections order (bf16/fp32 layers only).
  std::vector<PackedLinear::Prepacked> prepacked() const;
  // False when a stored layout had to be repacked for this CPU.
  bool used_in_place() const;

  // The primitives of the four projections for `rows` rows (PackedLinear::prepare), as
  // functions a thread pool may run at once; none for int8 (the experiment creates on use).
  std::vector<std::function<void()>> preparations(int64_t rows) const {
    if (fc1_8_ || qkv_8_) return {};
    std::vector<std::function<void()>> out;
    for (const PackedLinear* p : {qkv_.get(), out_.get(), fc1_.get(), fc2_.get()})
      out.emplace_back([p, rows] { p->prepare(rows); });
    return out;
  }
  // x Wqkv^T + bqkv: [.., 3E], fp32 (bf16 in unsplit bf16 layers: the attention products' input).
  at::Tensor qkv(const at::Tensor& x) const { return qkv_8_ ? qkv_8_->run(x) : qkv_->run(x); }
  // residual + o Wout^T + bout.
  at::Tensor out(const at::Tensor& o, const at::Tensor& residual) const {
    return out_8_ ? out_8_->run(o, &residual) : out_->run(o, &residual);
  }
  // residual + fc2(gelu(fc1(x))); in bf16 the GELU output is written as bf16 (the rounding fc2's
  // input needs anyway).
  at::Tensor feed_forward(const at::Tensor& x, const at::Tensor& residual) const {
    if (fc1_8_) return fc2_8_->run(fc1_8_->run(x), &residual);
    return fc2_->run(fc1_->run(x), &residual);
  }

 private:
  PackedLayer() = default;
  // Packs the projections the plan puts in int8 (the int8 experiment).
  Status pack_int8(const Weights& w, const Int8Plan& plan, const PackedLinear::Allocate& allocate);

  std::unique_ptr<PackedLinear> qkv_, out_, fc1_, fc2_;
  std::unique_ptr<Int8Linear> qkv_8_, out_8_, fc1_8_, fc2_8_;  // int8 instead (experiment)
};

}  // namespace ecgq
