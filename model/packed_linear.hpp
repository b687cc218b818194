// A transformer projection y = epilogue(x W^T + b) on oneDNN's matmul primitive with the weights
// reordered once, at load, into the blocked layout the primitive prefers. oneDNN stays out of
// this header (see packed_linear.cpp); only the model's implementation includes it.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>

#include "common/status.hpp"

namespace ecgq {

// A linear layer with pre-packed weights and fused bias and epilogue. run() may be called from
// one thread at a time (the model's contract); the primitive for each row count M is created on
// first use and kept in a small cache.
class PackedLinear {
 public:
  // What the projection computes and in which precision.
  struct Options {
    bool bf16 = false;      // bf16 input and weights (fp32 accumulation); else fp32 throughout
    bool split = false;     // bf16: weights as hi + lo (w - bf16(w)), ~16-bit weights: two products
    bool gelu = false;      // fused GELU (erf) on the output
    bool residual = false;  // fused add of a same-shaped fp32 residual (run's second argument)
    bool bf16_out = false;  // bf16 output (the next projection's input), else fp32
  };
  // A byte tensor of `bytes` for the packed weights, kept as long as the projection: the model's
  // arena (huge pages, unmapped with the model).
  using Allocate = std::function<at::Tensor(int64_t bytes)>;
  // Weights already in a packed layout, as a model file stores them.
  struct Prepacked {
    at::Tensor bytes;    // uint8, the layout's size, 64-byte aligned
    std::string layout;  // DnnlCpu::layout_text of their layout ("pair;" + it: hi, then lo)
    std::string kernel;  // the kernel it was chosen for (for people; not compared)
  };

  // Packs `weight` ([N, K] row-major): fp32 (a checkpoint's; bf16 options round it, and split
  // ones take its low part here), or already bf16 for bf16 options (a model file's hi, with its
  // low part `lo` [N, K] bf16 when split). `bias` ([N] fp32) is kept by reference and must
  // outlive the projection. Fails when oneDNN has no optimised kernel here.
  static Expected<std::unique_ptr<PackedLinear>> pack(const at::Tensor& weight,
                                                      const at::Tensor& bias,
                                                      const Options& options,
                                                      const Allocate& allocate,
                                                      const at::Tensor& lo = at::Tensor());
  // The projection over weights a model file stored packed, with `bias` as pack() keeps it: used
  // in place when `w.layout` is the layout this CPU's kernel wants (no copy, `w.bytes` kept),
  // else reordered into that layout in memory from `allocate` (an export made on another CPU).
  static Expected<std::unique_ptr<PackedLinear>> adopt(const Prepacked& w, const at::Tensor& bias,
                                                       const Options& options,
                                                       const Allocate& allocate);
  // Weights stored packed back in plain [N, K] row-major form (their dtype): {hi, lo} when
  // `split` (lo the low part), else {w, undefined}; for the ATen path.
  static Expected<std::pair<at::Tensor, at::Tensor>> unpack(const Prepacked& w, bool split);
  ~PackedLinear();
  PackedLinear(const PackedLinear&) = delete;
  PackedLinear& operator=(const PackedLinear&) = delete;

  // y = epilogue(x W^T + b [+ residual]) over the last dimension of `x` (fp32 or bf16, any
  // leading shape); `residual` has y's shape (fp32) when Options::residual.
  at::Tensor run(const at::Tensor& x, const at::Tensor* residual = nullptr) const;

  // Creates the primitive run() uses for `rows` rows (and shares with every projection of the
  // same shape and options) unless it exists: a new batch size creates them all at once, on
  // every thread (prepare may be called from several threads, on different projections).
  void prepare(int64_t rows) const;

  // oneDNN's name for the kernel chosen for the packed layout (logs, docs).
  const std::string& implementation() const;
  // The packed weights and their layout, for a model file (a view of the projection's memory).
  Prepacked prepacked() const;
  // False when adopt() had to repack stored weights for this CPU.
  bool used_in_place() const;

 private:
  struct Impl;
  explicit PackedLinear(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Whether the model packs its projections: on unless ECGQ_PACKED_WEIGHTS=0 (A/B runs in one
// process: the variable is read at each load).
bool packed_weights_enabled();

}  // namespace ecgq
