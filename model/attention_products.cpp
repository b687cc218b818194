// AttentionProducts on oneDNN 2.6's matmul primitive with strided (plain, non-contiguous) views.
#include "model/attention_products.hpp"

#include <ATen/ATen.h>

#include <array>
#include <cmath>
#include <map>

#include "model/dnnl_cpu.hpp"

namespace ecgq {

using dt = dnnl::memory::data_type;
using dims = dnnl::memory::dims;

struct AttentionProducts::Impl {
  int64_t heads = 1;
  // The two primitives of one (B, T, E, bf16) and the scratchpads they borrow.
  struct Pair {
    dnnl::matmul scores, context;
    dnnl::softmax_v2_forward softmax;  // fp32 scores -> probabilities of a's type
    dnnl::memory::desc scores_scratch, context_scratch, softmax_scratch;
    dnnl::memory::desc q, k, s, a, v, o;  // a: the probabilities (bf16 when q/k/v are)
    std::string implementation;           // oneDNN's kernels: scores, context, softmax
  };
  mutable std::map<std::array<int64_t, 4>, Pair> by_shape;
  mutable std::string last;  // implementation of the last run

  const Pair& pair(int64_t b, int64_t t, int64_t e, bool bf16) const {
    auto it = by_shape.find({b, t, e, bf16});
    if (it != by_shape.end()) return it->second;
    if (by_shape.size() >= 8) by_shape.erase(by_shape.begin());
    const int64_t h = heads, d = e / heads;
    const dt in = bf16 ? dt::bf16 : dt::f32;
    Pair p;
    // bf16: q and v as [B, H, T, D] and k^T as [B, H, D, T] in a head-major copy
    // [3, B, H, T, D] of the [B, T, 3E] rows (oneDNN's AMX kernel wants dense heads). fp32: q and
    // k^T read in place from the rows, v copied head-major [B, H, T, D]: read in place too, the
    // context product took gemm:jit, whose first call in a process cost ~20 ms (its kernels
    // generated then) and whose steady product was slower than the copy and brgemm together.
    if (bf16) {
      p.q = dnnl::memory::desc({b, h, t, d}, in, dims{h * t * d, t * d, d, 1});
      p.k = dnnl::memory::desc({b, h, d, t}, in, dims{h * t * d, t * d, 1, d});
      p.v = p.q;
    } else {
      p.q = dnnl::memory::desc({b, h, t, d}, in, dims{t * 3 * e, d, 3 * e, 1});
      p.k = dnnl::memory::desc({b, h, d, t}, in, dims{t * 3 * e, d, 1, 3 * e});
      p.v = dnnl::memory::desc({b, h, t, d}, in, dims{h * t * d, t * d, d, 1});
    }
    // Scores in fp32 (the softmax's input); bf16 probabilities for the second product.
    p.s = dnnl::memory::desc({b, h, t, t}, dt::f32, dims{h * t * t, t * t, t, 1});
    p.a = dnnl::memory::desc({b, h, t, t}, in, dims{h * t * t, t * t, t, 1});
    // The context written as [B, T, H, D] = [B, T, E].
    p.o = dnnl::memory::desc({b, h, t, d}, in, dims{t * e, d, e, 1});
    const DnnlCpu& cpu = DnnlCpu::get();
    dnnl::primitive_attr scaled;
    scaled.set_output_scales(0, {static_cast<float>(1.0 / std::sqrt(static_cast<double>(d)))});
    scaled.set_scratchpad_mode(dnnl::scratchpad_mode::user);
    dnnl::matmul::primitive_desc spd(dnnl::matmul::desc(p.q, p.k, p.s), scaled, cpu.engine());
    dnnl::primitive_attr plain;
    plain.set_scratchpad_mode(dnnl::scratchpad_mode::user);
    dnnl::matmul::primitive_desc cpd(dnnl::matmul::desc(p.a, p.v, p.o), plain, cpu.engine());
    p.scores = dnnl::matmul(spd);
    p.context = dnnl::matmul(cpd);
    p.scores_scratch = spd.scratchpad_desc();
    dnnl::softmax_v2_forward::primitive_desc smd(
        dnnl::softmax_v2_forward::desc(dnnl::prop_kind::forward_inference,
                                       dnnl::algorithm::softmax_accurate, p.s, p.a, 3),
        plain, cpu.engine());
    p.softmax = dnnl::softmax_v2_forward(smd);
    p.softmax_scratch = smd.scratchpad_desc();
    p.implementation =
        spd.impl_info_str() + std::string(", ") + cpd.impl_info_str() + ", " + smd.impl_info_str();
    p.context_scratch = cpd.scratchpad_desc();
    return by_shape.emplace(std::array<int64_t, 4>{b, t, e, bf16}, std::move(p)).first->second;
  }
};

AttentionProducts::AttentionProducts(int64_t heads) : impl_(std::make_unique<Impl>()) {
  impl_->heads = heads;
}
AttentionProducts::~AttentionProducts() = default;

const std::string& AttentionProducts::implementation() const {
  return impl_->last;
}

void AttentionProducts::prepare(int64_t b, int64_t t, int64_t e, bool bf16) const {
  (void)impl_->pair(b, t, e, bf16);
}

at::Tensor AttentionProducts::run(const at::Tensor& qkv_in, at::Tensor* probs) const {
  at::Tensor qkv = qkv_in.contiguous();
  const int64_t b = qkv.size(0), t = qkv.size(1), e = qkv.size(2) / 3, h = impl_->heads;
  const bool bf16 = qkv.scalar_type() == at::kBFloat16;
  const Impl::Pair& p = impl_->pair(b, t, e, bf16);
  impl_->last = p.implementation;
  DnnlCpu& cpu = DnnlCpu::get();
  const dnnl::engine& eng = cpu.engine();
  at::Tensor v;  // fp32: v head-major
  if (bf16)
    qkv = qkv.view({b, t, 3, h, e / h}).permute({2, 0, 3, 1, 4}).contiguous();
  else
    v = qkv.narrow(2, 2 * e, e).view({b, t, h, e / h}).transpose(1, 2).contiguous();
  auto* base = static_cast<char*>(qkv.data_ptr());
  // bytes from q to k (and k to v)
  const int64_t part = (bf16 ? b * t * e : e) * static_cast<int64_t>(qkv.element_size());
  void* v_data = bf16 ? base + 2 * part : v.data_ptr();
  at::Tensor s = at::empty({b, h, t, t}, at::kFloat);
  at::Tensor o = at::empty({b, t, e}, qkv.scalar_type());
  p.scores.execute(cpu.stream(), {{DNNL_ARG_SRC, dnnl::memory(p.q, eng, base)},
                                  {DNNL_ARG_WEIGHTS, dnnl::memory(p.k, eng, base + part)},
                                  {DNNL_ARG_DST, dnnl::memory(p.s, eng, s.data_ptr())},
                                  {DNNL_ARG_SCRATCHPAD, DnnlCpu::scratchpad(p.scores_scratch)}});
  at::Tensor a;
  if (probs) {  // fp32 probabilities wanted (saliency): ATen's softmax, then rounded for v
    a = at::softmax(s, -1);
    *probs = a;
    if (bf16) a = a.to(at::kBFloat16);
  } else {
    a = at::empty({b, h, t, t}, qkv.scalar_type());
    p.softmax.execute(cpu.stream(),
                      {{DNNL_ARG_SRC, dnnl::memory(p.s, eng, s.data_ptr())},
                       {DNNL_ARG_DST, dnnl::memory(p.a, eng, a.data_ptr())},
                       {DNNL_ARG_SCRATCHPAD, DnnlCpu::scratchpad(p.softmax_scratch)}});
  }
  p.context.execute(cpu.stream(), {{DNNL_ARG_SRC, dnnl::memory(p.a, eng, a.data_ptr())},
                                   {DNNL_ARG_WEIGHTS, dnnl::memory(p.v, eng, v_data)},
                                   {DNNL_ARG_DST, dnnl::memory(p.o, eng, o.data_ptr())},
                                   {DNNL_ARG_SCRATCHPAD, DnnlCpu::scratchpad(p.context_scratch)}});
  cpu.stream().wait();
  return o;
}

}  // namespace ecgq
