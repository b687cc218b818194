// PackedConv on oneDNN 2.6's convolution primitive.
#include "model/packed_conv.hpp"

#include <ATen/ATen.h>

#include "model/bf16_rows.hpp"
#include "model/dnnl_cpu.hpp"
#include "model/prepacked_weights.hpp"

namespace ecgq {

using dt = dnnl::memory::data_type;
using tag = dnnl::memory::format_tag;

struct PackedConv::Impl {
  int64_t channels = 0, kernel = 0, groups = 1;
  Precision precision = Precision::fp32;
  int64_t terms = 1;           // input terms per group (2 when split)
  dnnl::memory::desc weights;  // the packed layout
  at::Tensor storage, bias;    // packed weights' memory; [C] fp32
  dnnl::memory packed;
  std::string implementation;
  // A primitive and the size of the scratchpad it borrows.
  struct Primitive {
    dnnl::convolution_forward primitive;
    dnnl::memory::desc scratchpad;
  };
  mutable std::map<std::pair<int64_t, int64_t>, Primitive> by_shape;  // per (B, T)

  dt src_type() const { return precision == Precision::fp32 ? dt::f32 : dt::bf16; }

  // Chooses the packed layout of weights `wdims` (`weights`, `implementation`); an error when
  // oneDNN has no direct kernel for it here.
  Status choose_layout(const dnnl::memory::dims& wdims) {
    auto layout = describe(2, 156, {wdims, src_type(), tag::any});
    implementation = layout.impl_info_str();
    if (implementation.find("ref") != std::string::npos ||
        implementation.find("gemm") != std::string::npos)
      return Status(ErrorCode::ModelError,
                    "oneDNN offers no direct convolution kernel here (" + implementation + ")");
    weights = layout.weights_desc();
    return Status::Ok();
  }
  // The source as the primitive reads it: [B, T, C * terms] channels-last.
  dnnl::memory::desc src_desc(int64_t b, int64_t t) const {
    return {{b, channels * terms, t}, src_type(), tag::nwc};
  }

  dnnl::convolution_forward::primitive_desc describe(int64_t b, int64_t t,
                                                     const dnnl::memory::desc& w) const {
    dnnl::memory::desc src = src_desc(b, t);
    dnnl::memory::desc dst({b, channels, t}, dt::f32, tag::nwc);
    dnnl::memory::desc bias_md({channels}, dt::f32, tag::a);
    dnnl::post_ops ops;
    ops.append_eltwise(1.0f, dnnl::algorithm::eltwise_gelu_erf, 0.0f, 0.0f);
    dnnl::primitive_attr attr;
    attr.set_post_ops(ops);
    attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
    dnnl::convolution_forward::desc d(dnnl::prop_kind::forward_inference,
                                      dnnl::algorithm::convolution_direct, src, w, bias_md, dst,
                                      {1}, {kernel / 2}, {kernel - 1 - kernel / 2});
    return dnnl::convolution_forward::primitive_desc(d, attr, DnnlCpu::get().engine());
  }

  const Primitive& primitive(int64_t b, int64_t t) const {
    auto it = by_shape.find({b, t});
    if (it != by_shape.end()) return it->second;
    if (by_shape.size() >= 8) by_shape.erase(by_shape.begin());  // a few batch sizes in use
    auto pd = describe(b, t, weights);
    return by_shape
        .emplace(std::make_pair(b, t),
                 Primitive{dnnl::convolution_forward(pd), pd.scratchpad_desc()})
        .first->second;
  }
};

namespace {

// The fp32 weights [G, O, I, K] as the primitive's source: split, [w_hi | w_lo] along I (the
// reorder to bf16 keeps w_hi exactly and rounds w_lo).
at::Tensor split_weights(const at::Tensor& w, PackedConv::Precision precision) {
  if (precision != PackedConv::Precision::bf16_split_w) return w.contiguous();
  // Per (g, o), [hi | lo] over I x K is split_weight_source of w as [G*O, I*K].
  const int64_t g = w.size(0), o = w.size(1), i = w.size(2), k = w.size(3);
  return split_weight_source(w.reshape({g * o, i * k}), at::Tensor()).view({g, o, 2 * i, k});
}

// x [B, T, C] fp32 as the primitive's source: split, [B, T, G, 2, C/G] (x_hi twice).
at::Tensor split_input(const at::Tensor& x, int64_t groups, PackedConv::Precision precision) {
  using P = PackedConv::Precision;
  if (precision == P::fp32) return x.contiguous();
  if (precision == P::bf16) return x.to(at::kBFloat16).contiguous();
  at::Tensor hi =
      x.reshape({x.size(0), x.size(1), groups, 1, x.size(2) / groups}).to(at::kBFloat16);
  return at::cat({hi, hi}, 3);
}

}  // namespace

PackedConv::PackedConv(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
PackedConv::~PackedConv() = default;

const std::string& PackedConv::implementation() const {
  return impl_->implementation;
}

Expected<std::unique_ptr<PackedConv>> PackedConv::pack(const at::Tensor& weight,
                                                       const at::Tensor& bias, int64_t groups,
                                                       Precision precision,
                                                       const PackedLinear::Allocate& allocate) {
  auto impl = std::make_unique<Impl>();
  impl->channels = weight.size(0);
  impl->kernel = weight.size(2);
  impl->groups = groups;
  impl->precision = precision;
  impl->terms = precision == Precision::bf16_split_w ? 2 : 1;
  impl->bias = bias;
  const int64_t per = impl->channels / groups;
  const dnnl::memory::dims wdims{groups, per, per * impl->terms, impl->kernel};
  try {
    const DnnlCpu& cpu = DnnlCpu::get();
    RETURN_IF_ERROR(impl->choose_layout(wdims));
    impl->storage = allocate(static_cast<int64_t>(impl->weights.get_size()));
    at::Tensor src = split_weights(weight.reshape({groups, per, per, impl->kernel}), precision);
    dnnl::memory from({wdims, dt::f32, tag::goiw}, cpu.engine(), src.data_ptr());
    impl->packed = DnnlCpu::pack(from, impl->weights, impl->storage.data_ptr());
  } catch (const dnnl::error& e) {
    return Status(ErrorCode::ModelError, std::string("oneDNN convolution: ") + e.what());
  }
  return std::unique_ptr<PackedConv>(new PackedConv(std::move(impl)));
}

namespace {

// The bf16 kind a stored layout [G, O, I * terms, K] holds: a model file's conv runs as it was
// stored, one term (bf16) or hi + lo (bf16_split_w, files exported before 2026-12-04 17:00).
PackedConv::Precision stored_kind(const dnnl::memory::desc& stored, PackedConv::Precision asked) {
  const auto& d = stored.data.dims;
  if (asked == PackedConv::Precision::fp32 || d[1] <= 0) return asked;
  return d[2] == 2 * d[1] ? PackedConv::Precision::bf16_split_w : PackedConv::Precision::bf16;
}

}  // namespace

Expected<std::unique_ptr<PackedConv>> PackedConv::adopt(const PackedLinear::Prepacked& w,
                                                        const at::Tensor& bias, int64_t groups,
                                                        Precision precision,
                                                        const PackedLinear::Allocate& allocate) {
  ASSIGN_OR_RETURN(const dnnl::memory::desc stored,
                   stored_layout(w, 4, "packed convolution weights"));
  auto impl = std::make_unique<Impl>();
  impl->precision = stored_kind(stored, precision);
  impl->terms = impl->precision == Precision::bf16_split_w ? 2 : 1;
  impl->groups = groups;
  impl->bias = bias;
  const auto& d = stored.data.dims;  // [G, O, I * terms, K]
  if (d[0] != groups || d[2] != d[1] * impl->terms ||
      stored.data.data_type != static_cast<dnnl_data_type_t>(impl->src_type()) ||
      bias.numel() != groups * d[1])
    return Status(ErrorCode::BadCheckpoint, "packed convolution weights '" + w.layout +
                                                "' do not fit a convolution of " +
                                                std::to_string(bias.numel()) + " channels in " +
                                                std::to_string(groups) + " groups");
  impl->channels = bias.numel();
  impl->kernel = d[3];
  try {
    RETURN_IF_ERROR(impl->choose_layout({d[0], d[1], d[2], d[3]}));
    bool in_place = true;
    impl->storage = adopt_storage(w, stored, impl->weights, allocate, &in_place);
    impl->packed = dnnl::memory(impl->weights, DnnlCpu::get().engine(), impl->storage.data_ptr());
  } catch (const dnnl::error& e) {
    return Status(ErrorCode::ModelError, std::string("oneDNN convolution: ") + e.what());
  }
  return std::unique_ptr<PackedConv>(new PackedConv(std::move(impl)));
}

Expected<at::Tensor> PackedConv::unpack(const PackedLinear::Prepacked& w, Precision precision) {
  ASSIGN_OR_RETURN(const dnnl::memory::desc stored,
                   stored_layout(w, 4, "packed convolution weights"));
  const int64_t terms = stored_kind(stored, precision) == Precision::bf16_split_w ? 2 : 1;
  const auto& d = stored.data.dims;  // [G, O, I * terms, K]
  if (d[2] != d[1] * terms)
    return Status(ErrorCode::BadCheckpoint, "packed convolution weights '" + w.layout +
                                                "' do not fit this precision's input terms");
  at::Tensor plain = at::empty({d[0], d[1], d[2], d[3]}, at::kFloat);
  try {
    dnnl::memory from(stored, DnnlCpu::get().engine(), w.bytes.data_ptr());
    DnnlCpu::pack(from, {{d[0], d[1], d[2], d[3]}, dt::f32, tag::goiw}, plain.data_ptr());
  } catch (const dnnl::error& e) {
    return Status(ErrorCode::ModelError, std::string("oneDNN reorder: ") + e.what());
  }
  if (terms == 2) plain = plain.narrow(2, 0, d[1]) + plain.narrow(2, d[1], d[1]);
  return plain.reshape({d[0] * d[1], d[1], d[3]}).contiguous();
}

PackedLinear::Prepacked PackedConv::prepacked() const {
  return {impl_->storage.narrow(0, 0, static_cast<int64_t>(impl_->weights.get_size())),
          DnnlCpu::layout_text(impl_->weights), impl_->implementation};
}

void PackedConv::prepare(int64_t b, int64_t t) const {
  (void)impl_->primitive(b, t);
}

at::Tensor PackedConv::run(const at::Tensor& x) const {
  const Impl& p = *impl_;
  const int64_t b = x.size(0), t = x.size(1);
  at::Tensor src = split_input(x, p.groups, p.precision);
  at::Tensor y = at::empty({b, t, p.channels}, at::kFloat);
  const dnnl::engine& eng = DnnlCpu::get().engine();
  std::unordered_map<int, dnnl::memory> args{
      {DNNL_ARG_SRC, dnnl::memory(p.src_desc(b, t), eng, src.data_ptr())},
      {DNNL_ARG_WEIGHTS, p.packed},
      {DNNL_ARG_BIAS, dnnl::memory({{p.channels}, dt::f32, tag::a}, eng, p.bias.data_ptr())},
      {DNNL_ARG_DST, dnnl::memory({{b, p.channels, t}, dt::f32, tag::nwc}, eng, y.data_ptr())}};
  const Impl::Primitive& conv = p.primitive(b, t);
  args.emplace(DNNL_ARG_SCRATCHPAD, DnnlCpu::scratchpad(conv.scratchpad));
  conv.primitive.execute(DnnlCpu::get().stream(), args);
  DnnlCpu::get().stream().wait();
  return y;
}

}  // namespace ecgq
