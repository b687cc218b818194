// Long file: one model class whose load, packing and forward pass share its private layer state.
// The native ECG-FM forward pass (spec section 2): oneDNN kernels with weights packed at load
// for the projections and the positional conv, ATen for the rest; weights are read from the
// checkpoint straight into their final tensors, the projections packed from its map.
#include "model/ecgfm_model.hpp"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>
#include <malloc.h>

#include <chrono>
#include <future>
#include <map>
#include <optional>
#include <set>

#include "common/memory.hpp"
#include "model/activation_pool.hpp"
#include "model/aten_projection.hpp"
#include "model/attention_products.hpp"
#include "model/bf16_rows.hpp"
#include "model/ecgfm_weights.hpp"
#include "model/packed_conv.hpp"
#include "model/packed_layer.hpp"
#include "model/prepare_shape.hpp"
#include "model/weight_arena.hpp"
#include "model/weight_norm.hpp"
#include "model/weight_reader.hpp"

namespace ecgq {
namespace {

constexpr double kEps = 1e-5;

struct ConvBlock {
  at::Tensor weight, bias;    // bias undefined unless conv_bias
  at::Tensor norm_w, norm_b;  // GroupNorm (default mode, block 0) or LayerNorm (layer_norm mode)
  int64_t stride = 1;
};

// The four projection weights of a layer are float32, or bfloat16 in bf16 mode (biases stay
// float32 and are added after the product, which keeps their full precision). In the last
// bf16_split_layers layers each bf16 weight also has a low part w - bf16(w): the two products
// together round the weight to ~16 bits instead of 8, which removes most of bf16's error at
// twice the bf16 cost (see docs/performance.md, bf16 accuracy).
struct Layer {
  at::Tensor qkv_w, qkv_b;                    // q, k, v projections stacked: [3E, E], [3E]
  at::Tensor qkv_lo, out_lo, fc1_lo, fc2_lo;  // low parts of split bf16 weights (else undefined)
  at::Tensor out_w, out_b;
  at::Tensor ln1_w, ln1_b;  // self_attn_layer_norm
  at::Tensor fc1_w, fc1_b, fc2_w, fc2_b;
  at::Tensor ln2_w, ln2_b;  // final_layer_norm
  // A model file's projections stored packed (PackedLayer::kProjections order), else empty.
  PackedLinear::Prepacked prepacked[4];
  // The four projections pre-packed for oneDNN (then the weights above are undefined).
  std::shared_ptr<const PackedLayer> packed;
};

class EcgfmModel : public Model {
 public:
  EcgfmModel(EcgfmArchitecture arch, ModelInfo info, int64_t split_layers, bool pack = false)
      : arch_(std::move(arch)),
        info_(std::move(info)),
        bf16_(info_.precision == "bf16"),
        packed_(pack && packed_weights_enabled()),
        split_layers_(bf16_ ? split_layers : 0),
        int8_(info_.precision == "int8" ? std::optional(Int8Plan::from_env()) : std::nullopt) {}

  Status load(const ckpt::Checkpoint& c) {
    c10::InferenceMode guard;
    if (int8_ && !packed_) return int8_needs_packing();
    SplitSourceReuse split_sources;
    WeightArena arena;
    WeightReader r(c, &arena);
    // Packing reads the projections where the file's map has them; the ATen path keeps its
    // weights, so it reads them into memory of its own.
    if (packed_) {
      const std::string why_not = r.map_file();
      if (!why_not.empty()) info_.architecture += ", checkpoint read (not mapped: " + why_not + ")";
    }
    Loading w{r, arena, {}};
    load_front(w);
    load_layers(w);
    if (w.st.ok()) w.st = r.intact();
    // Packing's temporaries (bf16 hi + lo, oneDNN's pd creation) came from malloc: hand their
    // pages back now rather than keep them resident beside the model.
    if (packed_) malloc_trim(0);
    note_packed();
    if (arch_.num_labels > 0) {
      head_w_ = w.get("proj.weight");
      head_b_ = w.get("proj.bias");
    }
    return w.st;
  }

  // Packs what a model file has filled in so far (make_slots, visit_weights): the positional
  // conv and input projection once theirs are there, each layer once all its weights are; the
  // filled projection weights are temporaries the model drops, the rest must already be in
  // `arena`. `last`: the file is read; what oneDNN could not pack is copied into `arena`.
  Status pack_adopted(WeightArena& arena, bool last) {
    if (!packed_) return Status::Ok();  // the ATen path reads the weights where they are
    c10::InferenceMode guard;
    if (!front_tried_ && (pos_w_.defined() || pos_prepacked_.bytes.defined()) && pos_b_.defined() &&
        (!arch_.post_extract_proj || (proj_in_w_.defined() && proj_in_b_.defined()))) {
      RETURN_IF_ERROR(pack_front(arena));
      front_tried_ = true;
    }
    layers_tried_.resize(layers_.size());
    for (size_t l = 0; l < layers_.size(); ++l) {
      if (layers_tried_[l]) continue;
      const bool split = split_layer(static_cast<int64_t>(l));
      Layer& L = layers_[l];
      bool complete = true;
      const at::Tensor* w[] = {&L.qkv_w, &L.out_w, &L.fc1_w, &L.fc2_w};
      const at::Tensor* lo[] = {&L.qkv_lo, &L.out_lo, &L.fc1_lo, &L.fc2_lo};
      for (int j = 0; j < 4; ++j)
        complete = complete && (L.prepacked[j].bytes.defined() ||
                                (w[j]->defined() && (lo[j]->defined() || !split)));
      for (const at::Tensor* t : {&L.qkv_b, &L.out_b, &L.fc1_b, &L.fc2_b})
        complete = complete && t->defined();
      if (!complete) continue;
      // A model file is never int8 (export refuses it): pack() fails only for weights stored
      // packed that cannot be adopted; what oneDNN cannot pack stays for the ATen path.
      RETURN_IF_ERROR(pack(L, split, arena).with_context("layer " + std::to_string(l)));
      layers_tried_[l] = true;
    }
    if (!last) return Status::Ok();
    own(pos_w_, arena);  // still there when oneDNN could not pack it
    products_ = std::make_unique<AttentionProducts>(arch_.heads);
    malloc_trim(0);
    note_packed();
    return Status::Ok();
  }

  ~EcgfmModel() override {
    ActivationPool::release();  // its passes' idle activation blocks
    if (library_pages_.valid()) library_pages_.wait();
  }
  const ModelInfo& info() const override { return info_; }

  // Every weight slot, named, with whether this model has it and its dtype
  // (model/ecgfm_weights.hpp).
  void visit_weights(const WeightVisitor& f) {
    const at::ScalarType proj = bf16_ ? at::kBFloat16 : at::kFloat, f32 = at::kFloat;
    for (size_t i = 0; i < conv_.size(); ++i) {
      const std::string b = "conv" + std::to_string(i) + ".";
      const bool norm =
          arch_.extractor_mode == "layer_norm" || (arch_.extractor_mode == "default" && i == 0);
      for (auto [n, t, has] : {std::tuple{"weight", &conv_[i].weight, true},
                               {"bias", &conv_[i].bias, arch_.conv_bias},
                               {"norm_w", &conv_[i].norm_w, norm},
                               {"norm_b", &conv_[i].norm_b, norm}})
        f(b + n, *t, has, f32);
    }
    for (auto [n, t, has] : {std::tuple{"feat_ln_w", &feat_ln_w_, true},
                             {"feat_ln_b", &feat_ln_b_, true},
                             {"proj_in_w", &proj_in_w_, arch_.post_extract_proj},
                             {"proj_in_b", &proj_in_b_, arch_.post_extract_proj},
                             {"pos_w", &pos_w_, true},
                             {"pos_b", &pos_b_, true},
                             {"enc_ln_w", &enc_ln_w_, true},
                             {"enc_ln_b", &enc_ln_b_, true},
                             {"head_w", &head_w_, arch_.num_labels > 0},
                             {"head_b", &head_b_, arch_.num_labels > 0}})
      f(n, *t, has, f32);
    for (size_t l = 0; l < layers_.size(); ++l) {
      Layer& L = layers_[l];
      const std::string b = "layer" + std::to_string(l) + ".";
      const bool lo = bf16_ && split_layer(static_cast<int64_t>(l));
      for (auto [n, t, has, type] : {std::tuple{"qkv_w", &L.qkv_w, true, proj},
                                     {"qkv_lo", &L.qkv_lo, lo, proj},
                                     {"out_w", &L.out_w, true, proj},
                                     {"out_lo", &L.out_lo, lo, proj},
                                     {"fc1_w", &L.fc1_w, true, proj},
                                     {"fc1_lo", &L.fc1_lo, lo, proj},
                                     {"fc2_w", &L.fc2_w, true, proj},
                                     {"fc2_lo", &L.fc2_lo, lo, proj},
                                     {"qkv_b", &L.qkv_b, true, f32},
                                     {"out_b", &L.out_b, true, f32},
                                     {"fc1_b", &L.fc1_b, true, f32},
                                     {"fc2_b", &L.fc2_b, true, f32},
                                     {"ln1_w", &L.ln1_w, true, f32},
                                     {"ln1_b", &L.ln1_b, true, f32},
                                     {"ln2_w", &L.ln2_w, true, f32},
                                     {"ln2_b", &L.ln2_b, true, f32}})
        f(b + n, *t, has, type);
    }
  }

  // Memory for packed weights, from `arena`.
  static PackedLinear::Allocate allocator(WeightArena& arena) {
    return [&arena](int64_t bytes) { return arena.empty({bytes}, at::kByte); };
  }
  // Whether layer l carries low parts (the last split_layers_ layers; bf16 only).
  bool split_layer(int64_t l) const { return l >= arch_.layers - split_layers_; }
  // The positional conv's precision: bf16 models run it as [x | x] * [w_hi | w_lo].
  PackedConv::Precision conv_precision() const {
    // bf16 rounds the conv's weights too unless every layer is split (then all weights are
    // ~16-bit): since the split projections became two products (more accurate), a bf16 conv
    // keeps every shared record within 2e-3 (1.85e-3 at the default 6 of 12) and saves the hi +
    // lo weights' 8 MB and a third of the conv's time (docs/performance.md).
    if (!bf16_) return PackedConv::Precision::fp32;
    return split_layers_ >= arch_.layers ? PackedConv::Precision::bf16_split_w
                                         : PackedConv::Precision::bf16;
  }
  // What PackedLayer::pack takes of layer L: its weights, and those a model file stored packed.
  static PackedLayer::Weights weights_of(const Layer& L) {
    return {L.qkv_w,        L.qkv_b,        L.out_w,        L.out_b,       L.fc1_w,  L.fc1_b,
            L.fc2_w,        L.fc2_b,        L.qkv_lo,       L.out_lo,      L.fc1_lo, L.fc2_lo,
            L.prepacked[0], L.prepacked[1], L.prepacked[2], L.prepacked[3]};
  }

  // Where a model file's packed projection goes (layer -1: the positional conv; nullptr when
  // out of range).
  PackedLinear::Prepacked* prepacked_slot(int64_t l, int projection) {
    if (l == -1 && projection == 0) return &pos_prepacked_;
    if (l < 0 || l >= static_cast<int64_t>(layers_.size()) || projection < 0 || projection > 3)
      return nullptr;
    return &layers_[static_cast<size_t>(l)].prepacked[projection];
  }

  // Layer l's projections packed as a packing load would pack them (the model keeps its plain
  // weights), for a model file; empty when oneDNN cannot pack them here. Layer -1: the
  // positional convolution.
  std::vector<PackedLinear::Prepacked> prepack_layer(int64_t l, WeightArena& arena) {
    if (l == -1) {
      auto conv = PackedConv::pack(pos_w_, pos_b_, arch_.conv_pos_groups, conv_precision(),
                                   allocator(arena));
      if (!conv.ok()) return {};
      return {(*conv)->prepacked()};
    }
    auto packed = PackedLayer::pack(weights_of(layers_.at(static_cast<size_t>(l))), bf16_,
                                    split_layer(l), allocator(arena));
    return packed.ok() ? (*packed)->prepacked() : std::vector<PackedLinear::Prepacked>();
  }

  // Empty weight slots for the architecture, for visit_weights to fill.
  void make_slots() {
    conv_.resize(arch_.conv.size());
    for (size_t i = 0; i < conv_.size(); ++i) conv_[i].stride = arch_.conv[i].stride;
    layers_.resize(static_cast<size_t>(arch_.layers));
  }

  Expected<ModelOutput> run(const float* x, int64_t n, const RunOptions& options) override {
    auto out = run_capture(x, n, options, nullptr);
    // The first pass of a batch size creates its oneDNN primitives (JIT): their temporaries
    // leave ~11 MiB of free heap that later passes do not reuse; hand it back once. Pooled
    // activations stay (the next pass takes them: releasing them cost it their page faults).
    // The library pages only start-up touched (LibTorch's registrations) go too, on a thread of
    // their own so that the result does not wait for the ~4 ms of reading smaps; the next pass
    // takes back the code it runs, once (docs/performance.md, "Memory").
    if (batch_sizes_seen_.insert(n).second) {
      malloc_trim(0);
      using namespace std::chrono_literals;
      if (!library_pages_.valid() || library_pages_.wait_for(0s) == std::future_status::ready)
        library_pages_ = std::async(std::launch::async, release_library_pages);
    }
    return out;
  }

  Expected<ModelOutput> run_capture(const float* x, int64_t n, const RunOptions& options,
                                    ActivationCapture* capture) {
    if (x == nullptr || n <= 0)
      return Status(ErrorCode::BadInput,
                    "need at least one segment (got " + std::to_string(n) + ")");
    try {
      return forward(x, n, options, capture);
    } catch (const c10::Error& e) {
      return Status(ErrorCode::ModelError,
                    std::string("forward pass failed: ") + e.what_without_backtrace());
    } catch (const std::exception& e) {
      return Status(ErrorCode::ModelError, std::string("forward pass failed: ") + e.what());
    }
  }

 private:
  // Weights being read by name, keeping the first error: after one, reads return nothing and the
  // load reports that error at the end.
  struct Loading {
    WeightReader& r;
    WeightArena& arena;
    Status st;
    at::Tensor get(const std::string& name, bool temporary = false) {
      if (!st.ok()) return {};
      auto t = r.get(name, temporary);
      if (!t.ok()) {
        st = t.status();
        return {};
      }
      return t.value();
    }
  };

  // The feature extractor, its layer norm and projection, the positional conv and the encoder's
  // layer norm.
  void load_front(Loading& w) {
    const std::string& p = arch_.prefix;
    for (size_t i = 0; i < arch_.conv.size(); ++i) {
      std::string b = p + "feature_extractor.conv_layers." + std::to_string(i);
      ConvBlock blk;
      blk.stride = arch_.conv[i].stride;
      blk.weight = w.get(b + ".0.weight");
      if (arch_.conv_bias) blk.bias = w.get(b + ".0.bias");
      if (arch_.extractor_mode == "default" && i == 0) {
        blk.norm_w = w.get(b + ".2.weight");
        blk.norm_b = w.get(b + ".2.bias");
      } else if (arch_.extractor_mode == "layer_norm") {
        blk.norm_w = w.get(b + ".2.1.weight");
        blk.norm_b = w.get(b + ".2.1.bias");
      }
      conv_.push_back(blk);
    }
    feat_ln_w_ = w.get(p + "layer_norm.weight");
    feat_ln_b_ = w.get(p + "layer_norm.bias");
    if (arch_.post_extract_proj) {
      proj_in_w_ = w.get(p + "post_extract_proj.weight");
      proj_in_b_ = w.get(p + "post_extract_proj.bias");
    }
    {
      // Weight norm with dim=2, folded once: w = v * g / ||v|| over dims 0 and 1. In float64:
      // a float32 norm's rounding depends on how many threads summed it, and an export (folded
      // in another process) would then differ from its checkpoint in the last bit.
      at::Tensor g = w.get(arch_.pos_g_key, true);
      at::Tensor v = w.get(arch_.pos_v_key, true);
      if (w.st.ok()) pos_w_ = fold_weight_norm_last_dim(v, g);
    }
    pos_b_ = w.get(p + "conv_pos.pos_conv.0.bias");
    (void)pack_front(w.arena);  // from plain weights: what oneDNN cannot pack stays for ATen
    if (packed_) products_ = std::make_unique<AttentionProducts>(arch_.heads);
    if (!pos_conv_ && pos_w_.defined())
      pos_w_ = w.arena.empty(pos_w_.sizes(), at::kFloat).copy_(pos_w_);
    enc_ln_w_ = w.get(p + "encoder.layer_norm.weight");
    enc_ln_b_ = w.get(p + "encoder.layer_norm.bias");
  }

  // The positional convolution (bf16: hi + lo weights) and the input projection (fp32: its error
  // would reach every layer) on oneDNN with packed weights.
  // A model file's pos conv stored packed that cannot be adopted is an error (no plain weights).
  Status pack_front(WeightArena& arena) {
    const bool stored = pos_prepacked_.bytes.defined();
    if (!packed_ || (!pos_w_.defined() && !stored) || !pos_b_.defined()) return Status::Ok();
    const PackedLinear::Allocate allocate = allocator(arena);
    auto conv = stored ? PackedConv::adopt(pos_prepacked_, pos_b_, arch_.conv_pos_groups,
                                           conv_precision(), allocate)
                       : PackedConv::pack(pos_w_, pos_b_, arch_.conv_pos_groups, conv_precision(),
                                          allocate);
    pos_prepacked_ = {};
    if (stored && !conv.ok()) return conv.status().with_context("positional convolution");
    if (conv.ok()) {
      pos_conv_ = std::move(conv).value();
      pos_w_ = at::Tensor();
    }
    if (!proj_in_w_.defined()) return Status::Ok();
    auto proj = PackedLinear::pack(proj_in_w_, proj_in_b_, {}, allocate);
    if (proj.ok()) proj_in_ = std::move(proj).value();
    return Status::Ok();
  }

  // The transformer layers; in bf16 mode the projections are rounded (and the last
  // split_layers_ of them split hi + lo).
  void load_layers(Loading& w) {
    const std::string& p = arch_.prefix;
    const int64_t E = arch_.embed_dim, F = arch_.ffn_dim;
    // bf16 mode reads each layer's float32 projection weights into these buffers, reused for
    // every layer, and rounds them into the arena: the load touches no extra fresh memory and
    // peaks one layer above warm.
    WeightArena scratch_arena;  // unmapped when the load returns
    at::Tensor scratch_qkv, scratch_out, scratch_fc1, scratch_fc2;
    if (bf16_ || packed_) {
      scratch_qkv = scratch_arena.empty({3 * E, E}, at::kFloat);
      scratch_out = scratch_arena.empty({E, E}, at::kFloat);
      scratch_fc1 = scratch_arena.empty({F, E}, at::kFloat);
      scratch_fc2 = scratch_arena.empty({E, F}, at::kFloat);
    }
    // A projection weight: straight into the arena (fp32), or for packing (and bf16) where the
    // file's map has it, else read into its scratch buffer.
    auto weight = [&](const std::string& name, const at::Tensor& scratch) -> at::Tensor {
      if (!bf16_ && !packed_) return w.get(name);
      if (!w.st.ok()) return scratch;
      auto mapped = w.r.view(name, scratch.sizes());
      if (mapped.ok() && *mapped) return **mapped;
      w.st = mapped.ok() ? w.r.read_into(name, scratch) : mapped.status();
      return scratch;
    };
    for (int64_t l = 0; l < arch_.layers && w.st.ok(); ++l) {
      std::string b = p + "encoder.layers." + std::to_string(l) + ".";
      Layer L;
      L.qkv_w = bf16_ || packed_ ? scratch_qkv : w.arena.empty({3 * E, E}, at::kFloat);
      L.qkv_b = w.arena.empty({3 * E}, at::kFloat);
      const char* names[3] = {"q_proj", "k_proj", "v_proj"};
      for (int j = 0; j < 3 && w.st.ok(); ++j) {
        w.st = w.r.read_into(b + "self_attn." + names[j] + ".weight", L.qkv_w.narrow(0, j * E, E));
        if (w.st.ok())
          w.st = w.r.read_into(b + "self_attn." + names[j] + ".bias", L.qkv_b.narrow(0, j * E, E));
      }
      L.out_w = weight(b + "self_attn.out_proj.weight", scratch_out);
      L.out_b = w.get(b + "self_attn.out_proj.bias");
      L.ln1_w = w.get(b + "self_attn_layer_norm.weight");
      L.ln1_b = w.get(b + "self_attn_layer_norm.bias");
      L.fc1_w = weight(b + "fc1.weight", scratch_fc1);
      L.fc1_b = w.get(b + "fc1.bias");
      L.fc2_w = weight(b + "fc2.weight", scratch_fc2);
      L.fc2_b = w.get(b + "fc2.bias");
      L.ln2_w = w.get(b + "final_layer_norm.weight");
      L.ln2_b = w.get(b + "final_layer_norm.bias");
      const bool split = split_layer(l);
      if (packed_ && w.st.ok()) w.st = pack(L, split, w.arena);
      if (bf16_ && !L.packed && w.st.ok()) round_to_bf16(L, split, w.arena);
      w.r.release_views();  // packed (or copied): the file's pages leave this process's RSS
      layers_.push_back(std::move(L));
    }
  }

  // Packs a layer's projections from the scratch buffers (fp32) or a model file's weights (bf16
  // hi + lo in bf16); when oneDNN cannot, the layer keeps them for the ATen path (copied into the
  // arena, except a checkpoint's bf16, which the caller rounds into it); int8 has no ATen path.
  Status pack(Layer& L, bool split, WeightArena& arena) {
    auto packed =
        PackedLayer::pack(weights_of(L), bf16_, split, allocator(arena), int8_ ? &*int8_ : nullptr);
    const bool stored_packed = L.prepacked[0].bytes.defined();
    for (auto& p : L.prepacked) p = {};  // adopted, or refused (no plain weights to fall back on)
    if (!packed.ok() && (int8_ || stored_packed)) return packed.status();
    at::Tensor* weights[] = {&L.qkv_w,  &L.out_w,  &L.fc1_w,  &L.fc2_w,
                             &L.qkv_lo, &L.out_lo, &L.fc1_lo, &L.fc2_lo};
    if (packed.ok()) L.packed = std::move(packed).value();
    for (at::Tensor* t : weights) {
      if (L.packed)
        *t = at::Tensor();
      else if (!bf16_ || t->scalar_type() == at::kBFloat16)
        own(*t, arena);
    }
    return Status::Ok();
  }

  // Replaces `t` (when defined) by a copy in `arena`.
  static void own(at::Tensor& t, WeightArena& arena) {
    if (t.defined()) t = arena.empty(t.sizes(), t.scalar_type()).copy_(t);
  }

  // Says in the architecture line that the projections run packed, and on which kernel.
  void note_packed() {
    if (layers_.empty() || !layers_.back().packed) return;
    info_.architecture +=
        ", projections pre-packed (" + layers_.back().packed->implementation() + ")";
    for (const Layer& L : layers_)
      if (L.packed && !L.packed->used_in_place()) {
        info_.architecture += ", stored layout repacked for this CPU";
        return;
      }
  }

  // Rounds a layer's projection weights to bf16 in the arena; with `split`, also keeps what the
  // rounding dropped (w - hi) as a second bf16 weight.
  static void round_to_bf16(Layer& L, bool split, WeightArena& arena) {
    std::pair<at::Tensor*, at::Tensor*> weights[] = {
        {&L.qkv_w, &L.qkv_lo}, {&L.out_w, &L.out_lo}, {&L.fc1_w, &L.fc1_lo}, {&L.fc2_w, &L.fc2_lo}};
    for (auto [w, lo] : weights) {
      at::Tensor hi = arena.empty(w->sizes(), at::kBFloat16).copy_(*w);
      // w - hi is what bf16 rounding dropped (w may be the file's read-only map: not in place).
      if (split) *lo = arena.empty(w->sizes(), at::kBFloat16).copy_(*w - hi);
      *w = hi;
    }
  }
  static void keep(ActivationCapture* capture, const std::string& name, const at::Tensor& t) {
    if (capture == nullptr) return;
    at::Tensor c = t.contiguous();
    CapturedTensor& out = (*capture)[name];
    out.shape = c.sizes().vec();
    out.data.assign(c.data_ptr<float>(), c.data_ptr<float>() + c.numel());
  }

  static std::vector<float> to_vector(const at::Tensor& t) {
    at::Tensor c = t.contiguous();
    return std::vector<float>(c.data_ptr<float>(), c.data_ptr<float>() + c.numel());
  }

  // residual + multi-head self-attention of x; `attn_mean` receives the head-averaged
  // probabilities when set.
  at::Tensor attention(const Layer& L, const at::Tensor& x, const at::Tensor& residual,
                       at::Tensor* attn_mean) const {
    const int64_t B = x.size(0), T = x.size(1), E = arch_.embed_dim, H = arch_.heads, D = E / H;
    at::Tensor qkv = L.packed ? L.packed->qkv(x) : aten_project(x, L.qkv_w, L.qkv_b, L.qkv_lo);
    if (products_) {
      at::Tensor a, o = products_->run(qkv, attn_mean ? &a : nullptr);
      if (attn_mean) *attn_mean = a.mean(1);
      return L.packed ? L.packed->out(o, residual)
                      : residual + aten_project(o, L.out_w, L.out_b, L.out_lo);
    }
    auto parts = qkv.split(E, -1);
    at::Tensor q =
        (parts[0] * std::pow(static_cast<double>(D), -0.5)).view({B, T, H, D}).transpose(1, 2);
    at::Tensor k = parts[1].reshape({B, T, H, D}).transpose(1, 2);
    at::Tensor v = parts[2].reshape({B, T, H, D}).transpose(1, 2);
    at::Tensor a = at::softmax(at::matmul(q, k.transpose(-2, -1)), -1);  // [B, H, T, T]
    if (attn_mean) *attn_mean = a.mean(1);
    at::Tensor o = at::matmul(a, v).transpose(1, 2).reshape({B, T, E});
    if (L.packed) return L.packed->out(o, residual);
    return residual + aten_project(o, L.out_w, L.out_b, L.out_lo);
  }

  // residual + fc2(gelu(fc1(x))).
  static at::Tensor feed_forward(const Layer& L, const at::Tensor& x, const at::Tensor& residual) {
    if (L.packed) return L.packed->feed_forward(x, residual);
    return residual + aten_project(at::gelu(aten_project(x, L.fc1_w, L.fc1_b, L.fc1_lo)), L.fc2_w,
                                   L.fc2_b, L.fc2_lo);
  }

  // The feature extractor, its layer norm and the projection to the encoder's width:
  // [n, frames, E] from n segments.
  at::Tensor features(const float* xin, int64_t n, ActivationCapture* capture) {
    at::Tensor x = at::from_blob(const_cast<float*>(xin),
                                 {n, info_.in_leads, info_.segment_samples}, at::kFloat);
    for (size_t i = 0; i < conv_.size(); ++i) {
      const ConvBlock& blk = conv_[i];
      x = at::conv1d(x, blk.weight, blk.bias, {blk.stride});
      if (blk.norm_w.defined()) {
        const int64_t dim = blk.weight.size(0);
        if (arch_.extractor_mode == "default")
          x = at::group_norm(x, dim, blk.norm_w, blk.norm_b, kEps);
        else
          x = at::layer_norm(x.transpose(1, 2), {dim}, blk.norm_w, blk.norm_b, kEps)
                  .transpose(1, 2);
      }
      x = at::gelu_(x);  // in place: x is this block's own output
      keep(capture, "conv" + std::to_string(i) + "_out", x);
    }
    x = at::layer_norm(x.transpose(1, 2), {feat_ln_w_.size(0)}, feat_ln_w_, feat_ln_b_, kEps);
    keep(capture, "feat_layer_norm_out", x);
    if (proj_in_w_.defined()) {
      x = proj_in_ ? proj_in_->run(x) : at::linear(x, proj_in_w_, proj_in_b_);
      keep(capture, "post_extract_proj_out", x);
    }
    return x;
  }

  // gelu(pos_conv(x)) over [B, T, E], as [B, T, E].
  at::Tensor positional(const at::Tensor& x) const {
    if (pos_conv_) return pos_conv_->run(x);
    at::Tensor y = at::conv1d(x.transpose(1, 2), pos_w_, pos_b_, {1}, {arch_.conv_pos / 2}, {1},
                              arch_.conv_pos_groups);
    if (arch_.conv_pos % 2 == 0) y = y.narrow(2, 0, y.size(2) - 1);  // SamePad
    return at::gelu(y).transpose(1, 2);
  }

  Expected<ModelOutput> forward(const float* xin, int64_t n, const RunOptions& options,
                                ActivationCapture* capture) {
    c10::InferenceMode guard;
    ActivationPool::Scope pooled;  // the pass's large tensors reuse blocks by size
    const int64_t E = arch_.embed_dim;
    at::Tensor x = features(xin, n, capture);
    if (packed_ && prepared_.insert({x.size(0), x.size(1)}).second)  // a new shape's primitives
      prepare_shape({pos_conv_.get(), products_.get(),
                     split_layers_ < arch_.layers ? layers_.front().packed.get() : nullptr,
                     split_layers_ > 0 ? layers_.back().packed.get() : nullptr, bf16_},
                    x.size(0), x.size(1), E);
    at::Tensor y = positional(x);
    keep(capture, "conv_pos_out", y);
    x.add_(y);  // x is the features' own output
    if (!arch_.layer_norm_first) {
      x = at::layer_norm(x, {E}, enc_ln_w_, enc_ln_b_, kEps);
      keep(capture, "encoder_in_layer_norm_out", x);
    }
    at::Tensor saliency;
    for (size_t l = 0; l < layers_.size(); ++l) {
      const Layer& L = layers_[l];
      at::Tensor* attn = options.saliency && l + 1 == layers_.size() ? &saliency : nullptr;
      if (arch_.layer_norm_first) {
        x = attention(L, at::layer_norm(x, {E}, L.ln1_w, L.ln1_b, kEps), x, attn);
        x = feed_forward(L, at::layer_norm(x, {E}, L.ln2_w, L.ln2_b, kEps), x);
      } else {
        x = at::layer_norm(attention(L, x, x, attn), {E}, L.ln1_w, L.ln1_b, kEps);
        x = at::layer_norm(feed_forward(L, x, x), {E}, L.ln2_w, L.ln2_b, kEps);
      }
      keep(capture, "layer" + std::to_string(l) + "_out", x);
    }
    if (arch_.layer_norm_first) x = at::layer_norm(x, {E}, enc_ln_w_, enc_ln_b_, kEps);
    keep(capture, "encoder_out", x);

    // Count-nonzero mean over time, per channel, as upstream pools.
    at::Tensor emb = x.sum(1) / x.ne(0).sum(1);
    keep(capture, "emb_pooled", emb);

    ModelOutput out;
    out.batch = n;
    out.frames = x.size(1);
    out.embed_dim = E;
    out.embedding = to_vector(emb);
    if (head_w_.defined()) {
      at::Tensor logits = at::linear(emb, head_w_, head_b_);
      at::Tensor probs = at::sigmoid(logits);
      keep(capture, "logits", logits);
      keep(capture, "probs", probs);
      out.logits = to_vector(logits);
      out.probs = to_vector(probs);
    }
    if (options.encoder_out) out.encoder_out = to_vector(x);
    if (saliency.defined()) {
      keep(capture, "saliency_last_layer", saliency);
      out.saliency = to_vector(saliency);
    }
    return out;
  }

  EcgfmArchitecture arch_;
  ModelInfo info_;
  bool bf16_ = false;             // transformer projections in bfloat16
  bool packed_ = false;           // projections pre-packed for oneDNN (ECGQ_PACKED_WEIGHTS)
  int64_t split_layers_ = 0;      // last layers whose bf16 weights carry a low part
  std::optional<Int8Plan> int8_;  // int8 projections (experiment, ECGQ_INT8_EXPERIMENT=1)
  std::vector<ConvBlock> conv_;
  at::Tensor feat_ln_w_, feat_ln_b_, proj_in_w_, proj_in_b_;
  at::Tensor pos_w_, pos_b_;
  PackedLinear::Prepacked pos_prepacked_;  // a model file's pos conv stored packed, until adopted
  std::unique_ptr<PackedConv> pos_conv_;   // pos conv + GELU, packed (then pos_w_ is undefined)
  std::unique_ptr<PackedLinear> proj_in_;  // post_extract_proj, packed
  std::unique_ptr<AttentionProducts> products_;  // attention products on oneDNN (when packed_)
  at::Tensor enc_ln_w_, enc_ln_b_;
  std::vector<Layer> layers_;
  at::Tensor head_w_, head_b_;
  bool front_tried_ = false;            // pack_adopted: pos conv and input projection packed
  std::vector<bool> layers_tried_;      // pack_adopted: layers packed (or kept for the ATen path)
  std::set<int64_t> batch_sizes_seen_;  // by run(), for the trim after a new one's first pass
  std::future<int64_t> library_pages_;  // the last release_library_pages, maybe still running
  std::set<std::pair<int64_t, int64_t>> prepared_;  // [B, T] shapes whose primitives exist
};

}  // namespace

Expected<std::unique_ptr<Model>> load_ecgfm(const ckpt::Checkpoint& checkpoint,
                                            const LoadOptions& options) {
  RETURN_IF_ERROR(precision_offered(options.precision));
  ASSIGN_OR_RETURN(auto arch, derive_architecture(checkpoint));
  ModelInfo info;
  info.kind = "ecgfm";
  info.variant = arch.variant;
  if (arch.num_labels > 0) {
    if (arch.num_labels == static_cast<int64_t>(ecgfm_labels().size())) {
      info.labels = ecgfm_labels();
    } else {
      for (int64_t i = 0; i < arch.num_labels; ++i)
        info.labels.push_back("label_" + std::to_string(i));
    }
  }
  info.in_leads = arch.in_d;
  info.segment_samples = 2500;
  info.embed_dim = arch.embed_dim;
  info.parameters = arch.parameters;
  info.precision = options.precision;
  info.architecture = arch.summary();
  info.skipped = arch.skipped;
  const int64_t split = options.bf16_split_layers < 0
                            ? kDefaultBf16SplitLayers
                            : std::min<int64_t>(options.bf16_split_layers, arch.layers);
  if (options.precision == "bf16")
    info.architecture +=
        ", bf16 projections (last " + std::to_string(split) + " layers split hi+lo)";
  if (options.precision == "int8") info.architecture += ", " + Int8Plan::from_env().describe();
  auto model =
      std::make_unique<EcgfmModel>(std::move(arch), std::move(info), split, options.pack_weights);
  try {
    Status s = model->load(checkpoint);
    if (!s.ok()) return s.with_context(checkpoint.path);
  } catch (const c10::Error& e) {
    return Status(ErrorCode::BadCheckpoint, checkpoint.path + ": " + e.what_without_backtrace(),
                  "checkpoint");
  }
  return std::unique_ptr<Model>(std::move(model));
}

Expected<ModelOutput> run_ecgfm_with_capture(Model& model, const float* x, int64_t n,
                                             const RunOptions& options,
                                             ActivationCapture* capture) {
  auto* m = dynamic_cast<EcgfmModel*>(&model);
  if (m == nullptr)
    return Status(ErrorCode::BadInput, "run_ecgfm_with_capture needs a native ECG-FM model");
  return m->run_capture(x, n, options, capture);
}

void visit_ecgfm_weights(Model& model, const WeightVisitor& visit) {
  dynamic_cast<EcgfmModel&>(model).visit_weights(visit);
}

std::unique_ptr<Model> make_ecgfm_shell(EcgfmArchitecture arch, ModelInfo info,
                                        int64_t split_layers, bool pack) {
  auto model = std::make_unique<EcgfmModel>(std::move(arch), std::move(info), split_layers, pack);
  model->make_slots();
  return model;
}

Status pack_ecgfm_weights(Model& model, WeightArena& arena, bool last) {
  return dynamic_cast<EcgfmModel&>(model).pack_adopted(arena, last);
}

PackedLinear::Prepacked* ecgfm_prepacked_slot(Model& model, int64_t layer, int projection) {
  return dynamic_cast<EcgfmModel&>(model).prepacked_slot(layer, projection);
}

std::vector<PackedLinear::Prepacked> prepack_ecgfm_layer(Model& model, int64_t layer,
                                                         WeightArena& arena) {
  return dynamic_cast<EcgfmModel&>(model).prepack_layer(layer, arena);
}

}  // namespace ecgq
