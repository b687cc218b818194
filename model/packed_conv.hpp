// The positional convolution (grouped Conv1d, "same" length, GELU) on oneDNN's convolution
// primitive with the weights reordered once, at load, into its blocked layout, reading and
// writing channels-last [B, T, C] tensors as the transformer holds them (no transposes).
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <map>
#include <memory>

#include "common/status.hpp"
#include "model/packed_linear.hpp"

namespace ecgq {

// gelu(conv1d(x) + b) over [B, T, C] with T outputs (left pad K/2, right pad K-1-K/2: fairseq's
// pos_conv followed by SamePad). One primitive per batch size, created on first use.
class PackedConv {
 public:
  // How the product is computed. The bf16 kinds run on bf16 kernels (AMX where present) with fp32
  // accumulation and output. bf16_split_w concatenates a second term along each group's input
  // channels, [x_hi | x_hi] * [w_hi | w_lo] with w_lo = bf16(w - w_hi): one convolution of twice
  // the depth that rounds only the input (docs/performance.md has the variants measured).
  enum class Precision {
    fp32,
    bf16,          // input and weights rounded to bf16
    bf16_split_w,  // bf16 input, ~16-bit weights (hi + lo)
  };

  // weight [C, C/groups, K] fp32, bias [C] (kept by reference).
  static Expected<std::unique_ptr<PackedConv>> pack(const at::Tensor& weight,
                                                    const at::Tensor& bias, int64_t groups,
                                                    Precision precision,
                                                    const PackedLinear::Allocate& allocate);
  // The convolution over weights a model file stored packed (`w.layout` as prepacked() gave it):
  // used in place when this CPU's kernel wants that layout, else reordered into memory from
  // `allocate`. A bf16 `precision` runs as the weights were stored: bf16 or bf16_split_w.
  static Expected<std::unique_ptr<PackedConv>> adopt(const PackedLinear::Prepacked& w,
                                                     const at::Tensor& bias, int64_t groups,
                                                     Precision precision,
                                                     const PackedLinear::Allocate& allocate);
  // Weights stored packed back as the plain fp32 weight [C, C/groups, K] (split: hi + lo), for
  // the ATen path (the stored terms decide, as for adopt).
  static Expected<at::Tensor> unpack(const PackedLinear::Prepacked& w, Precision precision);
  // The packed weights and their layout, for a model file (a view of the convolution's memory).
  PackedLinear::Prepacked prepacked() const;
  ~PackedConv();
  PackedConv(const PackedConv&) = delete;
  PackedConv& operator=(const PackedConv&) = delete;

  // x [B, T, C] fp32 -> gelu(conv(x) + b) [B, T, C] fp32.
  at::Tensor run(const at::Tensor& x) const;

  // Creates the primitive run() uses for [b, t, C] inputs unless it exists (one thread at a time).
  void prepare(int64_t b, int64_t t) const;

  // oneDNN's name for the kernel (logs, docs).
  const std::string& implementation() const;

 private:
  struct Impl;
  explicit PackedConv(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace ecgq
