// Int8Linear on oneDNN 2.6's matmul primitive. oneDNN 2.6 has no per-row runtime source scales,
// and its JIT (brgemm) matmul refuses a binary post-op broadcast over [M, 1] (only the reference
// kernel takes it). It does take [1, M, 1] on a 3-D product with a batch of one, so the product is
// posed as [1, M, K] x [1, K, N]: output scales per N (the weights'), then a binary multiply by
// the row scales [1, M, 1], the bias [1, 1, N], GELU, and the residual [1, M, N], all fused.
#include "model/packed_linear_int8.hpp"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/util/BFloat16.h>
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "model/dnnl_cpu.hpp"

namespace ecgq {

using dt = dnnl::memory::data_type;
using tag = dnnl::memory::format_tag;

namespace {

// GCC 12 warns inside its own AVX-512 headers (their `_mm512_undefined_*` pass-through operands).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#define ECGQ_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl")))

// The lanes of `mask` from 16 floats at p.
ECGQ_AVX512 inline __m512 load16(const float* p, __mmask16 mask) {
  return _mm512_maskz_loadu_ps(mask, p);
}
// The lanes of `mask` from 16 bf16 at p, widened to fp32.
ECGQ_AVX512 inline __m512 load16(const at::BFloat16* p, __mmask16 mask) {
  const __m256i h = _mm256_maskz_loadu_epi16(mask, p);
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

// Quantizes one row of k values: returns max |x_i|, and with `inv` > 0 (a known scale) writes
// q_i = saturate_s8(round(x_i * inv)); with `inv` == 0 computes its own from the max first.
template <typename T>
ECGQ_AVX512 float quantize_row_avx512(const T* x, int64_t k, float inv, int8_t* q) {
  auto mask = [k](int64_t i) {
    return static_cast<__mmask16>(k - i >= 16 ? 0xFFFF : (1u << (k - i)) - 1);
  };
  __m512 m = _mm512_setzero_ps();
  for (int64_t i = 0; i < k; i += 16) m = _mm512_max_ps(m, _mm512_abs_ps(load16(x + i, mask(i))));
  const float top = _mm512_reduce_max_ps(m);
  if (q == nullptr) return top;
  const __m512 s = _mm512_set1_ps(inv > 0 ? inv : (top > 0 ? 127.0f / top : 1.0f));
  for (int64_t i = 0; i < k; i += 16) {
    const __m512i v = _mm512_cvtps_epi32(_mm512_mul_ps(load16(x + i, mask(i)), s));
    _mm512_mask_cvtsepi32_storeu_epi8(q + i, mask(i), v);
  }
  return top;
}

#undef ECGQ_AVX512
#pragma GCC diagnostic pop

// quantize_row_avx512 on CPUs without AVX-512 (BW, VL).
template <typename T>
float quantize_row(const T* x, int64_t k, float inv, int8_t* q) {
  static const bool avx512 = __builtin_cpu_supports("avx512f") &&
                             __builtin_cpu_supports("avx512bw") &&
                             __builtin_cpu_supports("avx512vl");
  if (avx512) return quantize_row_avx512(x, k, inv, q);
  float top = 0;
  for (int64_t i = 0; i < k; ++i) top = std::max(top, std::fabs(static_cast<float>(x[i])));
  if (q == nullptr) return top;
  const float s = inv > 0 ? inv : (top > 0 ? 127.0f / top : 1.0f);
  for (int64_t i = 0; i < k; ++i)
    q[i] = static_cast<int8_t>(
        std::clamp(std::nearbyint(static_cast<float>(x[i]) * s), -127.0f, 127.0f));
  return top;
}

// The scale that maps [-m, m] onto [-127, 127] (1 for an all-zero row).
float scale_for(float m) {
  return m > 0 ? m / 127.0f : 1.0f;
}

// Quantizes the rows of `x` ([rows, k], contiguous) into `q` and writes each row's scale to
// `scales`: in one pass over each row, or with `per_tensor` a first pass for the tensor's max.
template <typename T>
void quantize_rows(const T* x, int64_t rows, int64_t k, bool per_tensor, int8_t* q, float* scales) {
  float inv = 0;  // per row
  if (per_tensor) {
    at::parallel_for(0, rows, 16, [&](int64_t begin, int64_t end) {
      for (int64_t r = begin; r < end; ++r) scales[r] = quantize_row(x + r * k, k, 0, nullptr);
    });
    const float top = *std::max_element(scales, scales + rows);
    inv = 1.0f / scale_for(top);
  }
  at::parallel_for(0, rows, 16, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r)
      scales[r] = scale_for(quantize_row(x + r * k, k, inv, q + r * k));
  });
  if (per_tensor) std::fill(scales, scales + rows, 1.0f / inv);
}

}  // namespace

struct Int8Linear::Impl {
  Options options;
  int64_t n = 0, k = 0;              // output features, input features
  std::vector<float> scales;         // per output channel: w ≈ scales[n] * w_s8
  dnnl::memory::desc weights;        // the packed layout
  at::Tensor storage;                // the memory of `packed`
  dnnl::memory packed;               // s8 weights in that layout
  at::Tensor bias;                   // [N] fp32
  std::string implementation;        // kernel name for the layout
  mutable MatmulsByRows primitives;  // primitive per row count

  dt dst_type() const { return options.bf16_out ? dt::bf16 : dt::f32; }

  // Post-op slots: 0 row scales, 1 bias, then GELU, then the residual.
  int residual_slot() const { return options.gelu ? 3 : 2; }

  // The matmul descriptor for `rows` with weights `w` (the packed layout, or any).
  dnnl::matmul::primitive_desc describe(int64_t rows, const dnnl::memory::desc& w) const {
    dnnl::memory::desc src({1, rows, k}, dt::s8, tag::abc);
    dnnl::memory::desc dst({1, rows, n}, dst_type(), tag::abc);
    dnnl::post_ops ops;
    ops.append_binary(dnnl::algorithm::binary_mul, {{1, rows, 1}, dt::f32, tag::abc});
    ops.append_binary(dnnl::algorithm::binary_add, {{1, 1, n}, dt::f32, tag::abc});
    if (options.gelu) ops.append_eltwise(1.0f, dnnl::algorithm::eltwise_gelu_erf, 0.0f, 0.0f);
    if (options.residual)
      ops.append_binary(dnnl::algorithm::binary_add, {{1, rows, n}, dt::f32, tag::abc});
    dnnl::primitive_attr attr;
    attr.set_output_scales(1 << 2, scales);
    attr.set_post_ops(ops);
    attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
    return dnnl::matmul::primitive_desc(dnnl::matmul::desc(src, w, dst), attr,
                                        DnnlCpu::get().engine());
  }

  const MatmulsByRows::Entry& primitive(int64_t rows) const {
    return primitives.get(rows, [this](int64_t m) { return describe(m, weights); });
  }

  // Quantizes `weight` ([N, K] fp32) per output channel into `scales` and an s8 copy.
  at::Tensor quantize_weights(const at::Tensor& weight) {
    at::Tensor w = weight.to(at::kFloat).contiguous();
    at::Tensor s = w.abs().amax(1).div_(127.0f);
    s.masked_fill_(s == 0, 1.0f);
    scales.assign(s.data_ptr<float>(), s.data_ptr<float>() + n);
    return w.div(s.unsqueeze(1)).round_().clamp_(-127, 127).to(at::kChar).contiguous();
  }
};

Int8Linear::Int8Linear(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Int8Linear::~Int8Linear() = default;

const std::string& Int8Linear::implementation() const {
  return impl_->implementation;
}

Expected<std::unique_ptr<Int8Linear>> Int8Linear::pack(const at::Tensor& weight,
                                                       const at::Tensor& bias,
                                                       const Options& options,
                                                       const PackedLinear::Allocate& allocate) {
  auto impl = std::make_unique<Impl>();
  impl->options = options;
  impl->n = weight.size(0);
  impl->k = weight.size(1);
  impl->bias = bias;
  try {
    const DnnlCpu& cpu = DnnlCpu::get();
    at::Tensor q = impl->quantize_weights(weight);
    auto layout = impl->describe(kLayoutRows, {{1, impl->k, impl->n}, dt::s8, tag::any});
    impl->implementation = layout.impl_info_str();
    if (impl->implementation.find("ref") != std::string::npos)
      return Status(ErrorCode::ModelError, "oneDNN offers only its reference int8 matmul here (" +
                                               impl->implementation + ")");
    impl->weights = layout.weights_desc();
    impl->storage = allocate(static_cast<int64_t>(impl->weights.get_size()));
    // The source: W^T as [1, K, N] with strides (-, 1, K) ("acb").
    dnnl::memory from({{1, impl->k, impl->n}, dt::s8, tag::acb}, cpu.engine(), q.data_ptr());
    impl->packed = DnnlCpu::pack(from, impl->weights, impl->storage.data_ptr());
  } catch (const dnnl::error& e) {
    return Status(ErrorCode::ModelError, std::string("oneDNN int8 matmul: ") + e.what());
  }
  return std::unique_ptr<Int8Linear>(new Int8Linear(std::move(impl)));
}

at::Tensor Int8Linear::run(const at::Tensor& x, const at::Tensor* residual) const {
  const Impl& p = *impl_;
  const int64_t rows = x.numel() / x.size(-1);
  at::Tensor src = x.reshape({rows, p.k});
  if (src.scalar_type() != at::kBFloat16) src = src.to(at::kFloat);
  src = src.contiguous();
  at::Tensor q = at::empty({rows, p.k}, at::kChar);
  at::Tensor row_scales = at::empty({rows}, at::kFloat);
  if (src.scalar_type() == at::kBFloat16)
    quantize_rows(src.data_ptr<at::BFloat16>(), rows, p.k, p.options.per_tensor,
                  q.data_ptr<int8_t>(), row_scales.data_ptr<float>());
  else
    quantize_rows(src.data_ptr<float>(), rows, p.k, p.options.per_tensor, q.data_ptr<int8_t>(),
                  row_scales.data_ptr<float>());
  std::vector<int64_t> shape = x.sizes().vec();
  shape.back() = p.n;
  at::Tensor y = at::empty({rows, p.n}, p.options.bf16_out ? at::kBFloat16 : at::kFloat);
  const MatmulsByRows::Entry& mm = p.primitive(rows);
  const dnnl::engine& eng = DnnlCpu::get().engine();
  auto f32 = [&](dnnl::memory::dims dims, const at::Tensor& t) {
    return dnnl::memory({dims, dt::f32, tag::abc}, eng, t.data_ptr());
  };
  std::unordered_map<int, dnnl::memory> args{
      {DNNL_ARG_SRC, dnnl::memory({{1, rows, p.k}, dt::s8, tag::abc}, eng, q.data_ptr())},
      {DNNL_ARG_WEIGHTS, p.packed},
      {DNNL_ARG_DST, dnnl::memory({{1, rows, p.n}, p.dst_type(), tag::abc}, eng, y.data_ptr())},
      {DNNL_ARG_ATTR_MULTIPLE_POST_OP(0) | DNNL_ARG_SRC_1, f32({1, rows, 1}, row_scales)},
      {DNNL_ARG_ATTR_MULTIPLE_POST_OP(1) | DNNL_ARG_SRC_1, f32({1, 1, p.n}, p.bias)}};
  at::Tensor res;
  if (p.options.residual) {
    res = residual->reshape({rows, p.n}).to(at::kFloat).contiguous();
    args.emplace(DNNL_ARG_ATTR_MULTIPLE_POST_OP(p.residual_slot()) | DNNL_ARG_SRC_1,
                 f32({1, rows, p.n}, res));
  }
  args.emplace(DNNL_ARG_SCRATCHPAD, DnnlCpu::scratchpad(mm.scratchpad));
  mm.primitive.execute(DnnlCpu::get().stream(), args);
  DnnlCpu::get().stream().wait();
  return y.view(shape);
}

Int8Plan Int8Plan::from_env() {
  auto is = [](const char* name, const char* value) {
    const char* v = std::getenv(name);
    return v != nullptr && std::strcmp(v, value) == 0;
  };
  return {is("ECGQ_INT8_SCOPE", "ffn"), is("ECGQ_INT8_ACT", "tensor"), is("ECGQ_INT8_FC1", "f32")};
}

std::string Int8Plan::describe() const {
  return std::string("int8 ") + (ffn_only ? "fc1/fc2 (q/k/v, out bf16)" : "projections") + ", " +
         (per_tensor ? "per-tensor" : "per-token") + " activation scales" +
         (fc1_f32 ? ", fc1 out fp32" : "");
}

bool int8_experiment_enabled() {
  const char* v = std::getenv("ECGQ_INT8_EXPERIMENT");
  return v != nullptr && std::strcmp(v, "1") == 0;
}

}  // namespace ecgq
