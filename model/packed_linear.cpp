// PackedLinear on oneDNN 2.6's matmul primitive (Debian libdnnl-dev, the build LibTorch links).
#include "model/packed_linear.hpp"

#include <ATen/ATen.h>

#include <array>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>

#include "common/settings.hpp"
#include "model/bf16_rows.hpp"
#include "model/dnnl_cpu.hpp"
#include "model/prepacked_weights.hpp"

namespace ecgq {

using dt = dnnl::memory::data_type;
using tag = dnnl::memory::format_tag;

namespace {

// Projections of the same shape, options and packed layout share their primitives: a model's 48
// projections are 8 distinct ones (q/k/v, out, fc1, fc2; unsplit and split), so a new batch size
// describes 8 matmuls instead of 48 (oneDNN's own primitive cache already shares the kernels, not
// the descriptors, whose creation was ~0.3 ms each of a first pass).
struct SharedMatmuls {
  using Key = std::array<int64_t, 7>;  // N, K, split, bf16, gelu, residual, bf16_out
  struct Group {
    dnnl::memory::desc weights;
    MatmulsByRows primitives;
  };
  std::mutex mu;
  std::map<Key, Group> groups;

  static SharedMatmuls& get() {
    static SharedMatmuls* instance = new SharedMatmuls();  // never destroyed (exit order)
    return *instance;
  }
};

}  // namespace

struct PackedLinear::Impl {
  Options options;
  int64_t n = 0, k = 0;        // output features, input features (2K rows when split)
  dnnl::memory::desc weights;  // the packed layout
  at::Tensor storage;          // the memory of `packed`
  dnnl::memory packed;         // weights in that layout
  at::Tensor bias;             // [N] fp32
  std::string implementation;  // kernel name for the layout
  bool in_place = true;        // adopt(): the stored bytes are `storage`

  int64_t src_k() const { return options.split ? 2 * k : k; }
  dt src_type() const { return options.bf16 ? dt::bf16 : dt::f32; }
  dt dst_type() const { return options.bf16_out ? dt::bf16 : dt::f32; }

  // The matmul descriptor for `rows` with weights `w` (the packed layout, or any).
  dnnl::matmul::primitive_desc describe(int64_t rows, const dnnl::memory::desc& w) const {
    dnnl::memory::desc src({rows, src_k()}, src_type(), tag::ab);
    dnnl::memory::desc b({1, n}, dt::f32, tag::ab);
    dnnl::memory::desc dst({rows, n}, dst_type(), tag::ab);
    dnnl::post_ops ops;
    if (options.residual)
      ops.append_binary(dnnl::algorithm::binary_add, {{rows, n}, dt::f32, tag::ab});
    if (options.gelu) ops.append_eltwise(1.0f, dnnl::algorithm::eltwise_gelu_erf, 0.0f, 0.0f);
    dnnl::primitive_attr attr;
    attr.set_post_ops(ops);
    attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
    return dnnl::matmul::primitive_desc(dnnl::matmul::desc(src, w, b, dst), attr,
                                        DnnlCpu::get().engine());
  }

  // Chooses the packed layout for N x K weights (`weights`, `implementation`); an error when
  // oneDNN offers only its reference kernel.
  Status choose_layout() {
    const dt wtype = options.bf16 ? dt::bf16 : dt::f32;
    auto layout = describe(kLayoutRows, {{src_k(), n}, wtype, tag::any});
    implementation = layout.impl_info_str();
    if (implementation.find("ref") != std::string::npos)
      return Status(ErrorCode::ModelError,
                    "oneDNN offers only its reference matmul here (" + implementation + ")");
    weights = layout.weights_desc();
    return Status::Ok();
  }

  // The primitive for `rows`, shared with every projection of the same configuration (copied
  // handles: another thread may evict the cached entry meanwhile).
  MatmulsByRows::Entry primitive(int64_t rows) const {
    const SharedMatmuls::Key key{
        n, k, options.split, options.bf16, options.gelu, options.residual, options.bf16_out};
    SharedMatmuls& shared = SharedMatmuls::get();
    bool shareable = true;
    {
      std::lock_guard<std::mutex> lock(shared.mu);
      auto it = shared.groups.find(key);
      if (it == shared.groups.end())
        it = shared.groups.emplace(key, SharedMatmuls::Group{weights, {}}).first;
      // not reached: the same configuration packs alike
      shareable = it->second.weights == weights;
      if (const MatmulsByRows::Entry* e = it->second.primitives.find(rows); e && shareable)
        return *e;
    }
    // Created unlocked: prepare() creates several projections' primitives at once.
    auto pd = describe(rows, weights);
    MatmulsByRows::Entry made{dnnl::matmul(pd), pd.scratchpad_desc()};
    if (!shareable) return made;
    std::lock_guard<std::mutex> lock(shared.mu);
    return shared.groups.at(key).primitives.put(rows, std::move(made));
  }
};

PackedLinear::PackedLinear(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
PackedLinear::~PackedLinear() = default;

const std::string& PackedLinear::implementation() const {
  return impl_->implementation;
}

Expected<std::unique_ptr<PackedLinear>> PackedLinear::pack(const at::Tensor& weight,
                                                           const at::Tensor& bias,
                                                           const Options& options,
                                                           const Allocate& allocate,
                                                           const at::Tensor& lo) {
  const bool from_bf16 = weight.scalar_type() == at::kBFloat16;
  if (from_bf16 && (!options.bf16 || options.split != lo.defined()))
    return Status(
        ErrorCode::ModelError,
        "bf16 weights pack only into a bf16 projection, with a low part exactly when split");
  auto impl = std::make_unique<Impl>();
  impl->options = options;
  impl->n = weight.size(0);
  impl->k = weight.size(1);
  impl->bias = bias;
  try {
    const DnnlCpu& cpu = DnnlCpu::get();
    RETURN_IF_ERROR(impl->choose_layout());
    impl->storage = allocate(static_cast<int64_t>(impl->weights.get_size()));
    // The source: W^T as [K, N] with strides (1, K) ("ba"); split: rows K..2K-1 hold lo^T.
    // Always fp32 (exact for bf16 values): oneDNN 2.6 reorders a transposed bf16 source ~15x
    // slower than an fp32 one (1.6 s of a bf16 load for the 6 split layers), and the rounding
    // to bf16 it does on the way gives the same bits as rounding first.
    at::Tensor src =
        options.split ? split_weight_source(weight.to(from_bf16 ? at::kBFloat16 : at::kFloat), lo)
                      : weight.to(at::kFloat).contiguous();
    dnnl::memory::desc src_md({impl->src_k(), impl->n}, dt::f32, tag::ba);
    dnnl::memory from(src_md, cpu.engine(), src.data_ptr());
    impl->packed = DnnlCpu::pack(from, impl->weights, impl->storage.data_ptr());
  } catch (const dnnl::error& e) {
    return Status(ErrorCode::ModelError, std::string("oneDNN matmul: ") + e.what());
  }
  return std::unique_ptr<PackedLinear>(new PackedLinear(std::move(impl)));
}

Expected<std::unique_ptr<PackedLinear>> PackedLinear::adopt(const Prepacked& w,
                                                            const at::Tensor& bias,
                                                            const Options& options,
                                                            const Allocate& allocate) {
  ASSIGN_OR_RETURN(const dnnl::memory::desc stored, stored_layout(w, 2, "packed weights"));
  auto impl = std::make_unique<Impl>();
  impl->options = options;
  impl->n = stored.data.dims[1];
  impl->k = options.split ? stored.data.dims[0] / 2 : stored.data.dims[0];
  impl->bias = bias;
  if (bias.numel() != impl->n || impl->src_k() != stored.data.dims[0] ||
      stored.data.data_type != (options.bf16 ? dnnl_bf16 : dnnl_f32))
    return Status(ErrorCode::BadCheckpoint, "packed weights '" + w.layout +
                                                "' do not fit a projection with " +
                                                std::to_string(bias.numel()) + " outputs");
  try {
    RETURN_IF_ERROR(impl->choose_layout());
    impl->storage = adopt_storage(w, stored, impl->weights, allocate, &impl->in_place);
    impl->packed = dnnl::memory(impl->weights, DnnlCpu::get().engine(), impl->storage.data_ptr());
  } catch (const dnnl::error& e) {
    return Status(ErrorCode::ModelError, std::string("oneDNN matmul: ") + e.what());
  }
  return std::unique_ptr<PackedLinear>(new PackedLinear(std::move(impl)));
}

Expected<std::pair<at::Tensor, at::Tensor>> PackedLinear::unpack(const Prepacked& w, bool split) {
  ASSIGN_OR_RETURN(const dnnl::memory::desc stored, stored_layout(w, 2, "packed weights"));
  const int64_t k = stored.data.dims[0], n = stored.data.dims[1];
  if (split && k % 2 != 0)
    return Status(ErrorCode::BadCheckpoint,
                  "packed weights '" + w.layout + "' have an odd depth for a split projection");
  const bool bf16 = stored.data.data_type == dnnl_bf16;
  // W^T [K, N] with strides (1, K) is W [N, K] row-major.
  at::Tensor plain = at::empty({n, k}, bf16 ? at::kBFloat16 : at::kFloat);
  try {
    dnnl::memory from(stored, DnnlCpu::get().engine(), w.bytes.data_ptr());
    DnnlCpu::pack(from, {{k, n}, bf16 ? dt::bf16 : dt::f32, tag::ba}, plain.data_ptr());
  } catch (const dnnl::error& e) {
    return Status(ErrorCode::ModelError, std::string("oneDNN reorder: ") + e.what());
  }
  if (!split) return std::pair{plain, at::Tensor()};
  return std::pair{plain.narrow(1, 0, k / 2).contiguous(),
                   plain.narrow(1, k / 2, k / 2).contiguous()};
}

PackedLinear::Prepacked PackedLinear::prepacked() const {
  return {impl_->storage.narrow(0, 0, static_cast<int64_t>(impl_->weights.get_size())),
          DnnlCpu::layout_text(impl_->weights), impl_->implementation};
}

bool PackedLinear::used_in_place() const {
  return impl_->in_place;
}

at::Tensor PackedLinear::run(const at::Tensor& x, const at::Tensor* residual) const {
  const Impl& p = *impl_;
  const int64_t rows = x.numel() / x.size(-1);
  at::Tensor src = x.reshape({rows, x.size(-1)});
  if (p.options.split) {
    src = duplicate_rows_bf16(src);  // [x | x]
  } else {
    src = src.to(p.options.bf16 ? at::kBFloat16 : at::kFloat).contiguous();
  }
  std::vector<int64_t> shape = x.sizes().vec();
  shape.back() = p.n;
  at::Tensor y = at::empty({rows, p.n}, p.options.bf16_out ? at::kBFloat16 : at::kFloat);
  const MatmulsByRows::Entry mm = p.primitive(rows);
  const dnnl::engine& eng = DnnlCpu::get().engine();
  std::unordered_map<int, dnnl::memory> args{
      {DNNL_ARG_SRC, dnnl::memory({{rows, p.src_k()}, p.src_type(), tag::ab}, eng, src.data_ptr())},
      {DNNL_ARG_WEIGHTS, p.packed},
      {DNNL_ARG_BIAS, dnnl::memory({{1, p.n}, dt::f32, tag::ab}, eng, p.bias.data_ptr())},
      {DNNL_ARG_DST, dnnl::memory({{rows, p.n}, p.dst_type(), tag::ab}, eng, y.data_ptr())}};
  at::Tensor res;
  if (p.options.residual) {
    res = residual->reshape({rows, p.n}).to(at::kFloat).contiguous();
    args.emplace(DNNL_ARG_ATTR_MULTIPLE_POST_OP(0) | DNNL_ARG_SRC_1,
                 dnnl::memory({{rows, p.n}, dt::f32, tag::ab}, eng, res.data_ptr()));
  }
  args.emplace(DNNL_ARG_SCRATCHPAD, DnnlCpu::scratchpad(mm.scratchpad));
  mm.primitive.execute(DnnlCpu::get().stream(), args);
  DnnlCpu::get().stream().wait();
  return y.view(shape);
}

void PackedLinear::prepare(int64_t rows) const {
  (void)impl_->primitive(rows);
}

bool packed_weights_enabled() {
  const char* v = std::getenv("ECGQ_PACKED_WEIGHTS");
  return v == nullptr || std::strcmp(v, "0") != 0;
}

}  // namespace ecgq
