// Access to a native ECG-FM model's weight tensors by name, for the compact model file
// (model/ecgfm_export.cpp). Includes ATen: for model/*.cpp only, never for a widely included
// header.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "model/ecgfm_model.hpp"
#include "model/packed_linear.hpp"
#include "model/weight_arena.hpp"

namespace ecgq {

// Called for each weight slot: its name ("conv0.weight", "layer3.qkv_w", ...), the tensor (to read
// or fill), whether this architecture and precision have it, and the dtype it must have.
using WeightVisitor =
    std::function<void(const std::string& name, at::Tensor& slot, bool present, at::ScalarType)>;

// Visits every weight slot of a native model (from load_ecgfm or make_ecgfm_shell), in a fixed
// order; throws std::bad_cast for any other model.
void visit_ecgfm_weights(Model& model, const WeightVisitor& visit);

// A native model whose weight slots are empty, to be filled through visit_ecgfm_weights; `pack`:
// pack_ecgfm_weights packs them (when ECGQ_PACKED_WEIGHTS allows).
std::unique_ptr<Model> make_ecgfm_shell(EcgfmArchitecture arch, ModelInfo info,
                                        int64_t split_layers, bool pack = false);

// Packs what a shell being filled holds so far, as load_ecgfm packs (the positional conv and the
// input projection once their tensors are there, each layer once all its weights are), into
// `arena`; the projection weights and pos_w filled in are temporaries the model drops, every
// other tensor must already be in `arena`. `last` (all filled): what could not be packed is
// copied into `arena` too. Does nothing when the shell does not pack.
Status pack_ecgfm_weights(Model& model, WeightArena& arena, bool last);

// Where a model file's packed projection `projection` (PackedLayer::kProjections index) of layer
// `layer` goes in a shell, before the layer's other weights (layer -1, projection 0: the
// positional convolution); nullptr when out of range.
PackedLinear::Prepacked* ecgfm_prepacked_slot(Model& model, int64_t layer, int projection);

// Layer `layer` of a model loaded without packing, its projections packed as a packing load would
// pack them (memory from `arena`; the model keeps its plain weights), for a model file; empty
// when oneDNN cannot pack them on this CPU. Layer -1: the positional convolution (one entry).
std::vector<PackedLinear::Prepacked> prepack_ecgfm_layer(Model& model, int64_t layer,
                                                         WeightArena& arena);

// Whether a packing model drops slot `name` for its packed form (projection weights, pos_w).
bool ecgfm_weight_is_packed(const std::string& name);

}  // namespace ecgq
