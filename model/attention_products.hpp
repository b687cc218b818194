// The two products of multi-head attention, softmax(q k^T / sqrt(D)) v, on oneDNN's matmul
// primitive reading q, k and v in place from the fused q/k/v projection's output and writing the
// context in [B, T, E] order: no head transposes or copies (ATen's matmul copies q, k, v and o).
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <memory>
#include <string>

namespace ecgq {

// Scaled dot-product attention of `heads` heads over a [B, T, 3E] q/k/v tensor: fp32, or bf16
// (bf16 products on AMX where present, fp32 scores and softmax, bf16 probabilities and context).
// One set of primitives per (B, T, type), created on first use.
class AttentionProducts {
 public:
  explicit AttentionProducts(int64_t heads);
  ~AttentionProducts();
  AttentionProducts(const AttentionProducts&) = delete;
  AttentionProducts& operator=(const AttentionProducts&) = delete;

  // The context [B, T, E] of `qkv` [B, T, 3E], of qkv's type; `probs` receives the attention
  // probabilities [B, H, T, T] (fp32) when set.
  at::Tensor run(const at::Tensor& qkv, at::Tensor* probs) const;

  // Creates the primitives run() uses for a [b, t, 3e] input of that type unless they exist (one
  // thread at a time).
  void prepare(int64_t b, int64_t t, int64_t e, bool bf16) const;

  // oneDNN's kernels of the last run (scores, context, softmax), for tests and logs.
  const std::string& implementation() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace ecgq
