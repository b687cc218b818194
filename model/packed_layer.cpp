// PackedLayer: which epilogue each projection of a layer fuses.
#include "model/packed_layer.hpp"

namespace ecgq {

const char* const PackedLayer::kProjections[4] = {"qkv", "out", "fc1", "fc2"};

namespace {

// One projection: adopted from its prepacked bytes when the file stored them, else packed.
Expected<std::unique_ptr<PackedLinear>> make(const at::Tensor& w, const at::Tensor& b,
                                             const at::Tensor& lo, const PackedLinear::Prepacked& p,
                                             const PackedLinear::Options& options,
                                             const PackedLinear::Allocate& allocate) {
  if (p.bytes.defined()) return PackedLinear::adopt(p, b, options, allocate);
  return PackedLinear::pack(w, b, options, allocate, lo);
}

}  // namespace

Expected<std::unique_ptr<PackedLayer>> PackedLayer::pack(const Weights& w, bool bf16, bool split,
                                                         const PackedLinear::Allocate& allocate,
                                                         const Int8Plan* int8) {
  std::unique_ptr<PackedLayer> layer(new PackedLayer());
  if (int8 != nullptr) {
    RETURN_IF_ERROR(layer->pack_int8(w, *int8, allocate));
    if (!int8->ffn_only) return layer;
    bf16 = true;  // q/k/v and out below, in bf16 unsplit
    split = false;
  }
  PackedLinear::Options plain;
  plain.bf16 = bf16;
  plain.split = bf16 && split;
  PackedLinear::Options residual = plain;
  residual.residual = true;
  PackedLinear::Options gelu = plain;
  gelu.gelu = true;
  gelu.bf16_out = bf16;
  // Unsplit bf16 layers write q, k and v as bf16 for bf16 attention products (AMX); split layers
  // keep them fp32, as their error reaches the output undamped.
  PackedLinear::Options qkv = plain;
  qkv.bf16_out = bf16 && !split;
  ASSIGN_OR_RETURN(layer->qkv_, make(w.qkv_w, w.qkv_b, w.qkv_lo, w.qkv_p, qkv, allocate));
  ASSIGN_OR_RETURN(layer->out_, make(w.out_w, w.out_b, w.out_lo, w.out_p, residual, allocate));
  if (layer->fc1_8_) return layer;
  ASSIGN_OR_RETURN(layer->fc1_, make(w.fc1_w, w.fc1_b, w.fc1_lo, w.fc1_p, gelu, allocate));
  ASSIGN_OR_RETURN(layer->fc2_, make(w.fc2_w, w.fc2_b, w.fc2_lo, w.fc2_p, residual, allocate));
  return layer;
}

std::vector<PackedLinear::Prepacked> PackedLayer::prepacked() const {
  if (!qkv_ || !out_ || !fc1_ || !fc2_) return {};
  return {qkv_->prepacked(), out_->prepacked(), fc1_->prepacked(), fc2_->prepacked()};
}

bool PackedLayer::used_in_place() const {
  for (const auto* p : {&qkv_, &out_, &fc1_, &fc2_})
    if (*p && !(*p)->used_in_place()) return false;
  return true;
}

Status PackedLayer::pack_int8(const Weights& w, const Int8Plan& plan,
                              const PackedLinear::Allocate& allocate) {
  Int8Linear::Options plain;
  plain.per_tensor = plan.per_tensor;
  Int8Linear::Options residual = plain;
  residual.residual = true;
  Int8Linear::Options gelu = plain;
  gelu.gelu = true;
  gelu.bf16_out = !plan.fc1_f32;
  if (!plan.ffn_only) {
    ASSIGN_OR_RETURN(qkv_8_, Int8Linear::pack(w.qkv_w, w.qkv_b, plain, allocate));
    ASSIGN_OR_RETURN(out_8_, Int8Linear::pack(w.out_w, w.out_b, residual, allocate));
  }
  ASSIGN_OR_RETURN(fc1_8_, Int8Linear::pack(w.fc1_w, w.fc1_b, gelu, allocate));
  ASSIGN_OR_RETURN(fc2_8_, Int8Linear::pack(w.fc2_w, w.fc2_b, residual, allocate));
  return Status::Ok();
}

}  // namespace ecgq
