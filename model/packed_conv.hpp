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
  // weight [C, C/groups, K] fp32, bias [C] (kept by reference); bf16 rounds the input and the
  // weights (fp32 accumulation and output).
  static Expected<std::unique_ptr<PackedConv>> pack(const at::Tensor& weight,
                                                    const at::Tensor& bias, int64_t groups,
                                                    bool bf16,
                                                    const PackedLinear::Allocate& allocate);
  ~PackedConv();
  PackedConv(const PackedConv&) = delete;
  PackedConv& operator=(const PackedConv&) = delete;

  // x [B, T, C] fp32 -> gelu(conv(x) + b) [B, T, C] fp32.
  at::Tensor run(const at::Tensor& x) const;

  // oneDNN's name for the kernel (logs, docs).
  const std::string& implementation() const;

 private:
  struct Impl;
  explicit PackedConv(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace ecgq
