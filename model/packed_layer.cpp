// PackedLayer: which epilogue each projection of a layer fuses.
#include "model/packed_layer.hpp"

namespace ecgq {

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
  ASSIGN_OR_RETURN(layer->qkv_, PackedLinear::pack(w.qkv_w, w.qkv_b, qkv, allocate, w.qkv_lo));
  ASSIGN_OR_RETURN(layer->out_, PackedLinear::pack(w.out_w, w.out_b, residual, allocate, w.out_lo));
  if (layer->fc1_8_) return layer;
  ASSIGN_OR_RETURN(layer->fc1_, PackedLinear::pack(w.fc1_w, w.fc1_b, gelu, allocate, w.fc1_lo));
  ASSIGN_OR_RETURN(layer->fc2_, PackedLinear::pack(w.fc2_w, w.fc2_b, residual, allocate, w.fc2_lo));
  return layer;
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
