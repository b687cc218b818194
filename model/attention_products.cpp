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
  // The two primitives of one (B, T, E) and the scratchpads they borrow.
  struct Pair {
    dnnl::matmul scores, context;
    dnnl::memory::desc scores_scratch, context_scratch;
    dnnl::memory::desc q, k, s, v, o;
  };
  mutable std::map<std::array<int64_t, 3>, Pair> by_shape;

  const Pair& pair(int64_t b, int64_t t, int64_t e) const {
    auto it = by_shape.find({b, t, e});
    if (it != by_shape.end()) return it->second;
    if (by_shape.size() >= 8) by_shape.erase(by_shape.begin());
    const int64_t h = heads, d = e / heads;
    Pair p;
    // q and v as [B, H, T, D] and k^T as [B, H, D, T], all inside the [B, T, 3E] rows.
    p.q = dnnl::memory::desc({b, h, t, d}, dt::f32, dims{t * 3 * e, d, 3 * e, 1});
    p.k = dnnl::memory::desc({b, h, d, t}, dt::f32, dims{t * 3 * e, d, 1, 3 * e});
    p.v = p.q;
    p.s = dnnl::memory::desc({b, h, t, t}, dt::f32, dims{h * t * t, t * t, t, 1});
    // The context written as [B, T, H, D] = [B, T, E].
    p.o = dnnl::memory::desc({b, h, t, d}, dt::f32, dims{t * e, d, e, 1});
    const DnnlCpu& cpu = DnnlCpu::get();
    dnnl::primitive_attr scaled;
    scaled.set_output_scales(0, {static_cast<float>(1.0 / std::sqrt(static_cast<double>(d)))});
    scaled.set_scratchpad_mode(dnnl::scratchpad_mode::user);
    dnnl::matmul::primitive_desc spd(dnnl::matmul::desc(p.q, p.k, p.s), scaled, cpu.engine());
    dnnl::primitive_attr plain;
    plain.set_scratchpad_mode(dnnl::scratchpad_mode::user);
    dnnl::matmul::primitive_desc cpd(dnnl::matmul::desc(p.s, p.v, p.o), plain, cpu.engine());
    p.scores = dnnl::matmul(spd);
    p.context = dnnl::matmul(cpd);
    p.scores_scratch = spd.scratchpad_desc();
    p.context_scratch = cpd.scratchpad_desc();
    return by_shape.emplace(std::array<int64_t, 3>{b, t, e}, std::move(p)).first->second;
  }
};

AttentionProducts::AttentionProducts(int64_t heads) : impl_(std::make_unique<Impl>()) {
  impl_->heads = heads;
}
AttentionProducts::~AttentionProducts() = default;

at::Tensor AttentionProducts::run(const at::Tensor& qkv_in, at::Tensor* probs) const {
  at::Tensor qkv = qkv_in.contiguous();
  const int64_t b = qkv.size(0), t = qkv.size(1), e = qkv.size(2) / 3, h = impl_->heads;
  const Impl::Pair& p = impl_->pair(b, t, e);
  DnnlCpu& cpu = DnnlCpu::get();
  const dnnl::engine& eng = cpu.engine();
  float* base = qkv.data_ptr<float>();
  at::Tensor s = at::empty({b, h, t, t}, at::kFloat);
  at::Tensor o = at::empty({b, t, e}, at::kFloat);
  p.scores.execute(cpu.stream(), {{DNNL_ARG_SRC, dnnl::memory(p.q, eng, base)},
                                  {DNNL_ARG_WEIGHTS, dnnl::memory(p.k, eng, base + e)},
                                  {DNNL_ARG_DST, dnnl::memory(p.s, eng, s.data_ptr())},
                                  {DNNL_ARG_SCRATCHPAD, DnnlCpu::scratchpad(p.scores_scratch)}});
  at::Tensor a = at::softmax(s, -1);
  if (probs) *probs = a;
  p.context.execute(cpu.stream(), {{DNNL_ARG_SRC, dnnl::memory(p.s, eng, a.data_ptr())},
                                   {DNNL_ARG_WEIGHTS, dnnl::memory(p.v, eng, base + 2 * e)},
                                   {DNNL_ARG_DST, dnnl::memory(p.o, eng, o.data_ptr())},
                                   {DNNL_ARG_SCRATCHPAD, DnnlCpu::scratchpad(p.context_scratch)}});
  cpu.stream().wait();
  return o;
}

}  // namespace ecgq
