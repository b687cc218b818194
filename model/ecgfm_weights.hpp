// Access to a native ECG-FM model's weight tensors by name, for the compact model file
// (model/ecgfm_export.cpp). Includes ATen: for model/*.cpp only, never for a widely included
// header.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "model/ecgfm_model.hpp"

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

// Packs a filled shell's projections and positional conv for oneDNN (as load_ecgfm does) and
// copies the tensors it keeps unpacked into the model's own memory, so that none of its tensors
// refers to the memory the slots were filled from; does nothing when the shell does not pack.
void pack_ecgfm_weights(Model& model);

}  // namespace ecgq
