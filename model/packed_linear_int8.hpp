// An int8 transformer projection on oneDNN's matmul primitive (experiment, issue 17 "int8,
// measured"): s8 weights with one scale per output channel, packed once at load; the input
// quantized to s8 on each call with one scale per row (per token, max-abs); s32 accumulation; the
// two scales, bias, GELU and residual add fused as the primitive's output scales and post-ops.
// oneDNN stays out of this header (see packed_linear_int8.cpp).
#pragma once

#include <ATen/core/Tensor.h>

#include <memory>
#include <string>

#include "common/status.hpp"
#include "model/packed_linear.hpp"

namespace ecgq {

// What an int8 model quantizes and how (read from the environment at each load, so that the
// variants run side by side in one benchmark).
struct Int8Plan {
  bool ffn_only = false;    // only fc1/fc2 in int8; q/k/v and out stay bf16 (ECGQ_INT8_SCOPE=ffn)
  bool per_tensor = false;  // one activation scale per call, not per row (ECGQ_INT8_ACT=tensor)
  bool fc1_f32 = false;     // fc1 writes fp32 for fc2 to quantize, not bf16 (ECGQ_INT8_FC1=f32)

  // The plan the environment asks for.
  static Int8Plan from_env();
  // A few words for the model's architecture line.
  std::string describe() const;
};

// A linear layer y = epilogue(x W^T + b) with s8 weights and s8 dynamically quantized input.
// run() may be called from one thread at a time (the model's contract).
class Int8Linear {
 public:
  // The fused epilogue and the activation scaling.
  struct Options {
    bool gelu = false;        // fused GELU (erf) on the output
    bool residual = false;    // fused add of a same-shaped fp32 residual (run's second argument)
    bool per_tensor = false;  // one activation scale for the whole input instead of one per row
    bool bf16_out = false;    // bf16 output (fc1: the next projection's input), else fp32
  };

  // Quantizes `weight` ([N, K] fp32) per output channel and packs it; `bias` ([N] fp32) is kept
  // by reference and must outlive the projection. Fails when oneDNN has only its reference
  // kernel for this (a JIT int8 kernel is what the experiment measures).
  static Expected<std::unique_ptr<Int8Linear>> pack(const at::Tensor& weight,
                                                    const at::Tensor& bias, const Options& options,
                                                    const PackedLinear::Allocate& allocate);
  ~Int8Linear();
  Int8Linear(const Int8Linear&) = delete;
  Int8Linear& operator=(const Int8Linear&) = delete;

  // y = epilogue(x W^T + b [+ residual]) over the last dimension of `x` (fp32 or bf16, any
  // leading shape), in y's shape.
  at::Tensor run(const at::Tensor& x, const at::Tensor* residual = nullptr) const;

  // oneDNN's name for the kernel chosen for the packed layout (e.g. brg:avx512_core_amx_int8).
  const std::string& implementation() const;

 private:
  struct Impl;
  explicit Int8Linear(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Whether `precision: int8` may load: only for measurement, with ECGQ_INT8_EXPERIMENT=1
// (docs/performance.md, int8: it did not pay here).
bool int8_experiment_enabled();

}  // namespace ecgq
