// The projections' ATen path (ECGQ_PACKED_WEIGHTS=0, or where oneDNN's matmul cannot pack).
#include "model/aten_projection.hpp"

#include <ATen/ATen.h>
#include <dlfcn.h>

#include <cstdint>
#include <vector>

#include "common/settings.hpp"

namespace ecgq {
namespace {

// oneDNN's C API (dnnl.h, oneDNN 2.x): row-major C = alpha op(A) op(B) + beta C with bf16 A
// and B and float C; returns dnnl_success 0. ATen 1.13 has no bf16 x bf16 -> fp32 product,
// and libtorch links libdnnl, so the symbol is looked up in the running process.
using GemmBf16F32 = int (*)(char transa, char transb, int64_t M, int64_t N, int64_t K, float alpha,
                            const uint16_t* A, int64_t lda, const uint16_t* B, int64_t ldb,
                            float beta, float* C, int64_t ldc);

GemmBf16F32 gemm_bf16_f32() {
  static const GemmBf16F32 gemm = [] {
    // ECGQ_BF16_ATEN_LINEAR=1 takes the ATen fallback below (A/B runs, and its test).
    if (env_flag("ECGQ_BF16_ATEN_LINEAR")) return GemmBf16F32{nullptr};
    return reinterpret_cast<GemmBf16F32>(dlsym(RTLD_DEFAULT, "dnnl_gemm_bf16bf16f32"));
  }();
  return gemm;
}

}  // namespace

at::Tensor aten_project(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b,
                        const at::Tensor& w_lo) {
  if (w.scalar_type() != at::kBFloat16) return at::linear(x, w, b);
  at::Tensor xb = x.to(at::kBFloat16).contiguous();
  if (GemmBf16F32 gemm = gemm_bf16_f32()) {
    // C = bias (broadcast), then C += x W^T (and += x W_lo^T): fp32 output, no bf16 rounding
    // of the product, the bias fused into the GEMM's accumulate.
    const int64_t M = xb.numel() / xb.size(-1), K = xb.size(-1), N = w.size(0);
    std::vector<int64_t> shape = xb.sizes().vec();
    shape.back() = N;
    at::Tensor y = b.expand({M, N}).contiguous();
    auto* a = reinterpret_cast<const uint16_t*>(xb.data_ptr<at::BFloat16>());
    float* c = y.data_ptr<float>();
    if (gemm('N', 'T', M, N, K, 1.0f, a, K,
             reinterpret_cast<const uint16_t*>(w.data_ptr<at::BFloat16>()), K, 1.0f, c, N) == 0 &&
        (!w_lo.defined() || gemm('N', 'T', M, N, K, 1.0f, a, K,
                                 reinterpret_cast<const uint16_t*>(w_lo.data_ptr<at::BFloat16>()),
                                 K, 1.0f, c, N) == 0))
      return y.view(shape);
  }
  // Without the oneDNN entry point: ATen's bf16 linear, whose output is rounded to bf16.
  at::Tensor y = at::linear(xb, w).to(at::kFloat).add_(b);
  if (w_lo.defined()) y.add_(at::linear(xb, w_lo));
  return y;
}

}  // namespace ecgq
