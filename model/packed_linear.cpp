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
  using Key = std::array<int64_t, 8>;  // N, K, split, bf16, gelu, residual, bf16_out, part
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

// A split layout's text: the layout of one term, after this prefix; the bytes hold hi then lo.
constexpr const char* kPairPrefix = "pair;";

}  // namespace

struct PackedLinear::Impl {
  // Which product a primitive computes. A split projection is two products over the same bf16
  // input, each as deep as the unsplit one: x lo^T (+ residual) into fp32, then x hi^T + b + that
  // (+ GELU). One product of twice the depth over [x | x] took 2.4-2.9x an unsplit one here,
  // the two products 1.8-2.2x.
  enum class Part { whole, lo, hi };

  Options options;
  int64_t n = 0, k = 0;        // output features, input features
  dnnl::memory::desc weights;  // the packed layout of one term
  at::Tensor storage;          // the packed terms, back to back (split: hi, then lo)
  dnnl::memory packed;         // hi, or the unsplit weights
  dnnl::memory packed_lo;      // split: lo
  at::Tensor bias;             // [N] fp32
  std::string implementation;  // kernel name for the layout
  bool in_place = true;        // adopt(): the stored bytes are `storage`

  int terms() const { return options.split ? 2 : 1; }
  dt src_type() const { return options.bf16 ? dt::bf16 : dt::f32; }
  dt dst_type(Part part) const { return options.bf16_out && part != Part::lo ? dt::bf16 : dt::f32; }

  // The matmul descriptor of `part` for `rows` with weights `w` (the packed layout, or any).
  dnnl::matmul::primitive_desc describe(int64_t rows, const dnnl::memory::desc& w,
                                        Part part) const {
    dnnl::memory::desc src({rows, k}, src_type(), tag::ab);
    dnnl::memory::desc b({1, n}, dt::f32, tag::ab);
    dnnl::memory::desc dst({rows, n}, dst_type(part), tag::ab);
    dnnl::post_ops ops;
    // One fp32 [rows, N] addend: the residual (whole, lo) or the lo product's result (hi).
    if (part == Part::hi || options.residual)
      ops.append_binary(dnnl::algorithm::binary_add, {{rows, n}, dt::f32, tag::ab});
    if (options.gelu && part != Part::lo)
      ops.append_eltwise(1.0f, dnnl::algorithm::eltwise_gelu_erf, 0.0f, 0.0f);
    dnnl::primitive_attr attr;
    attr.set_post_ops(ops);
    attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
    const dnnl::engine& eng = DnnlCpu::get().engine();
    if (part == Part::lo)
      return dnnl::matmul::primitive_desc(dnnl::matmul::desc(src, w, dst), attr, eng);
    return dnnl::matmul::primitive_desc(dnnl::matmul::desc(src, w, b, dst), attr, eng);
  }

  // Chooses the packed layout for N x K weights (`weights`, `implementation`); an error when
  // oneDNN offers only its reference kernel, or (split) packs the two products differently.
  Status choose_layout() {
    const dt wtype = options.bf16 ? dt::bf16 : dt::f32;
    const dnnl::memory::desc any({k, n}, wtype, tag::any);
    auto layout = describe(kLayoutRows, any, options.split ? Part::hi : Part::whole);
    implementation = layout.impl_info_str();
    if (implementation.find("ref") != std::string::npos)
      return Status(ErrorCode::ModelError,
                    "oneDNN offers only its reference matmul here (" + implementation + ")");
    weights = layout.weights_desc();
    if (options.split && describe(kLayoutRows, any, Part::lo).weights_desc() != weights)
      return Status(ErrorCode::ModelError,
                    "oneDNN packs the two products of a split projection differently");
    return Status::Ok();
  }

  // `packed` and `packed_lo` over `storage`.
  void bind() {
    const dnnl::engine& eng = DnnlCpu::get().engine();
    char* base = static_cast<char*>(storage.data_ptr());
    packed = dnnl::memory(weights, eng, base);
    if (options.split) packed_lo = dnnl::memory(weights, eng, base + weights.get_size());
  }

  // The primitive of `part` for `rows`, shared with every projection of the same configuration
  // (copied handles: another thread may evict the cached entry meanwhile).
  MatmulsByRows::Entry primitive(int64_t rows, Part part) const {
    const SharedMatmuls::Key key{n,
                                 k,
                                 options.split,
                                 options.bf16,
                                 options.gelu,
                                 options.residual,
                                 options.bf16_out,
                                 static_cast<int64_t>(part)};
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
    auto pd = describe(rows, weights, part);
    MatmulsByRows::Entry made{dnnl::matmul(pd), pd.scratchpad_desc()};
    if (!shareable) return made;
    std::lock_guard<std::mutex> lock(shared.mu);
    return shared.groups.at(key).primitives.put(rows, std::move(made));
  }

  // dst = `part` of src [rows, K] with `w`, adding `added` ([rows, N] fp32) when the part's
  // post-ops take it.
  void execute(Part part, const at::Tensor& src, const dnnl::memory& w, const at::Tensor& dst,
               const at::Tensor* added) const {
    const int64_t rows = src.size(0);
    const MatmulsByRows::Entry mm = primitive(rows, part);
    const dnnl::engine& eng = DnnlCpu::get().engine();
    std::unordered_map<int, dnnl::memory> args{
        {DNNL_ARG_SRC, dnnl::memory({{rows, k}, src_type(), tag::ab}, eng, src.data_ptr())},
        {DNNL_ARG_WEIGHTS, w},
        {DNNL_ARG_DST, dnnl::memory({{rows, n}, dst_type(part), tag::ab}, eng, dst.data_ptr())}};
    if (part != Part::lo)
      args.emplace(DNNL_ARG_BIAS, dnnl::memory({{1, n}, dt::f32, tag::ab}, eng, bias.data_ptr()));
    if (added != nullptr)
      args.emplace(DNNL_ARG_ATTR_MULTIPLE_POST_OP(0) | DNNL_ARG_SRC_1,
                   dnnl::memory({{rows, n}, dt::f32, tag::ab}, eng, added->data_ptr()));
    args.emplace(DNNL_ARG_SCRATCHPAD, DnnlCpu::scratchpad(mm.scratchpad));
    mm.primitive.execute(DnnlCpu::get().stream(), args);
    DnnlCpu::get().stream().wait();
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
    RETURN_IF_ERROR(impl->choose_layout());
    const size_t term_bytes = impl->weights.get_size();
    impl->storage = allocate(static_cast<int64_t>(term_bytes) * impl->terms());
    // The source of each term: W^T as [K, N] with strides (1, row) over W's rows; split: the
    // rows of split_weight_source, hi in the first K columns and lo in the next. Always fp32
    // (exact for bf16 values): oneDNN 2.6 reorders a transposed bf16 source ~15x slower than
    // an fp32 one (1.6 s of a bf16 load for the 6 split layers), and the rounding to bf16 it
    // does on the way gives the same bits as rounding first.
    const at::Tensor src =
        options.split ? split_weight_source(weight.to(from_bf16 ? at::kBFloat16 : at::kFloat), lo)
                      : weight.to(at::kFloat).contiguous();
    const int64_t row = src.size(1);
    for (int t = 0; t < impl->terms(); ++t) {
      dnnl::memory from({{impl->k, impl->n}, dt::f32, dnnl::memory::dims{1, row}},
                        DnnlCpu::get().engine(), src.data_ptr<float>() + t * impl->k);
      DnnlCpu::pack(from, impl->weights,
                    static_cast<char*>(impl->storage.data_ptr()) + t * term_bytes);
    }
    impl->bind();
  } catch (const dnnl::error& e) {
    return Status(ErrorCode::ModelError, std::string("oneDNN matmul: ") + e.what());
  }
  return std::unique_ptr<PackedLinear>(new PackedLinear(std::move(impl)));
}

namespace {

// A stored layout's terms and the text of one (a split projection's starts with kPairPrefix).
std::pair<int, PackedLinear::Prepacked> stored_terms(const PackedLinear::Prepacked& w) {
  const size_t prefix = std::strlen(kPairPrefix);
  if (w.layout.compare(0, prefix, kPairPrefix) == 0)
    return {2, {w.bytes, w.layout.substr(prefix), w.kernel}};
  return {1, w};
}

}  // namespace

Expected<std::unique_ptr<PackedLinear>> PackedLinear::adopt(const Prepacked& w,
                                                            const at::Tensor& bias,
                                                            const Options& options,
                                                            const Allocate& allocate) {
  const auto [terms, one] = stored_terms(w);
  if (options.split && terms == 1) {
    // A format 2 file's split projection, one product of twice the depth: repacked as two.
    ASSIGN_OR_RETURN(auto plain, unpack(w, true));
    ASSIGN_OR_RETURN(auto repacked, pack(plain.first, bias, options, allocate, plain.second));
    repacked->impl_->in_place = false;
    return repacked;
  }
  ASSIGN_OR_RETURN(const dnnl::memory::desc stored, stored_layout(one, 2, "packed weights", terms));
  auto impl = std::make_unique<Impl>();
  impl->options = options;
  impl->n = stored.data.dims[1];
  impl->k = stored.data.dims[0];
  impl->bias = bias;
  if (bias.numel() != impl->n || terms != impl->terms() ||
      stored.data.data_type != (options.bf16 ? dnnl_bf16 : dnnl_f32))
    return Status(ErrorCode::BadCheckpoint, "packed weights '" + w.layout + "' do not fit a" +
                                                (options.split ? " split" : "n unsplit") +
                                                " projection with " + std::to_string(bias.numel()) +
                                                " outputs");
  try {
    RETURN_IF_ERROR(impl->choose_layout());
    impl->storage = adopt_storage(one, stored, impl->weights, allocate, &impl->in_place, terms);
    impl->bind();
  } catch (const dnnl::error& e) {
    return Status(ErrorCode::ModelError, std::string("oneDNN matmul: ") + e.what());
  }
  return std::unique_ptr<PackedLinear>(new PackedLinear(std::move(impl)));
}

Expected<std::pair<at::Tensor, at::Tensor>> PackedLinear::unpack(const Prepacked& w, bool split) {
  const auto [terms, one] = stored_terms(w);
  if (terms == 2 && !split)
    return Status(ErrorCode::BadCheckpoint,
                  "packed weights '" + w.layout + "' hold two terms for an unsplit projection");
  ASSIGN_OR_RETURN(const dnnl::memory::desc stored, stored_layout(one, 2, "packed weights", terms));
  const int64_t k = stored.data.dims[0], n = stored.data.dims[1];
  if (split && terms == 1 && k % 2 != 0)
    return Status(ErrorCode::BadCheckpoint,
                  "packed weights '" + w.layout + "' have an odd depth for a split projection");
  const bool bf16 = stored.data.data_type == dnnl_bf16;
  // W^T [K, N] with strides (1, K) is W [N, K] row-major; a format 2 split one is [hi | lo].
  at::Tensor plain = at::empty({terms, n, k}, bf16 ? at::kBFloat16 : at::kFloat);
  try {
    reorder_terms(one.bytes.data_ptr(), stored, plain.data_ptr(),
                  {{k, n}, bf16 ? dt::bf16 : dt::f32, tag::ba}, terms);
  } catch (const dnnl::error& e) {
    return Status(ErrorCode::ModelError, std::string("oneDNN reorder: ") + e.what());
  }
  if (terms == 2) return std::pair{plain[0], plain[1]};
  plain = plain[0];
  if (!split) return std::pair{plain, at::Tensor()};
  return std::pair{plain.narrow(1, 0, k / 2).contiguous(),
                   plain.narrow(1, k / 2, k / 2).contiguous()};
}

PackedLinear::Prepacked PackedLinear::prepacked() const {
  const int64_t bytes = static_cast<int64_t>(impl_->weights.get_size()) * impl_->terms();
  const std::string text = DnnlCpu::layout_text(impl_->weights);
  return {impl_->storage.narrow(0, 0, bytes), impl_->options.split ? kPairPrefix + text : text,
          impl_->implementation};
}

bool PackedLinear::used_in_place() const {
  return impl_->in_place;
}

at::Tensor PackedLinear::run(const at::Tensor& x, const at::Tensor* residual) const {
  using Part = Impl::Part;
  const Impl& p = *impl_;
  const int64_t rows = x.numel() / x.size(-1);
  const at::Tensor src =
      x.reshape({rows, x.size(-1)}).to(p.options.bf16 ? at::kBFloat16 : at::kFloat).contiguous();
  std::vector<int64_t> shape = x.sizes().vec();
  shape.back() = p.n;
  at::Tensor y = at::empty({rows, p.n}, p.options.bf16_out ? at::kBFloat16 : at::kFloat);
  at::Tensor res;
  if (p.options.residual) res = residual->reshape({rows, p.n}).to(at::kFloat).contiguous();
  if (p.options.split) {
    const at::Tensor low = at::empty({rows, p.n}, at::kFloat);
    p.execute(Part::lo, src, p.packed_lo, low, res.defined() ? &res : nullptr);
    p.execute(Part::hi, src, p.packed, y, &low);
  } else {
    p.execute(Part::whole, src, p.packed, y, res.defined() ? &res : nullptr);
  }
  return y.view(shape);
}

void PackedLinear::prepare(int64_t rows) const {
  if (impl_->options.split) {
    (void)impl_->primitive(rows, Impl::Part::lo);
    (void)impl_->primitive(rows, Impl::Part::hi);
  } else {
    (void)impl_->primitive(rows, Impl::Part::whole);
  }
}

bool packed_weights_enabled() {
  const char* v = std::getenv("ECGQ_PACKED_WEIGHTS");
  return v == nullptr || std::strcmp(v, "0") != 0;
}

}  // namespace ecgq
