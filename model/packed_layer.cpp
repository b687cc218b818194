// PackedLayer: which epilogue each projection of a layer fuses.
#include "model/packed_layer.hpp"

namespace ecgq {

Expected<std::unique_ptr<PackedLayer>> PackedLayer::pack(const Weights& w, bool bf16, bool split,
                                                         const PackedLinear::Allocate& allocate) {
  std::unique_ptr<PackedLayer> layer(new PackedLayer());
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
  ASSIGN_OR_RETURN(layer->qkv_, PackedLinear::pack(w.qkv_w, w.qkv_b, qkv, allocate));
  ASSIGN_OR_RETURN(layer->out_, PackedLinear::pack(w.out_w, w.out_b, residual, allocate));
  ASSIGN_OR_RETURN(layer->fc1_, PackedLinear::pack(w.fc1_w, w.fc1_b, gelu, allocate));
  ASSIGN_OR_RETURN(layer->fc2_, PackedLinear::pack(w.fc2_w, w.fc2_b, residual, allocate));
  return layer;
}

}  // namespace ecgq
