// Any TorchScript module as a Model (implementation in torchscript_model.cpp; torch-free header).
#pragma once

#include <memory>
#include <string>

#include "common/status.hpp"
#include "model/model.hpp"

namespace ecgq {

// Loads a TorchScript archive whose forward takes float32 [N, 12, 2500] and returns a tensor,
// a tuple or a dict of tensors (see torchscript_model.cpp for how outputs are mapped).
Expected<std::unique_ptr<Model>> load_torchscript(const std::string& path,
                                                  const LoadOptions& options);

}  // namespace ecgq
