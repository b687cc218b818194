// x W^T + b on ATen (and oneDNN's bf16 GEMM entry point for bf16 weights): the projections'
// path without packed weights.
#pragma once

#include <ATen/core/Tensor.h>

namespace ecgq {

// x W^T + b (+ x W_lo^T when `w_lo` is defined). With bfloat16 weights the product runs on
// oneDNN's bf16 GEMM (dnnl_gemm_bf16bf16f32, AVX-512 BF16 or AMX) with float32 accumulation;
// only the input and the weights are rounded to bf16. ECGQ_BF16_ATEN_LINEAR=1 takes ATen's bf16
// linear instead (its product is rounded to bf16).
at::Tensor aten_project(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b,
                        const at::Tensor& w_lo);

}  // namespace ecgq
