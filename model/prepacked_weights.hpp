// Weights a model file stored in a packed layout (PackedLinear::Prepacked), as the projections
// and the positional convolution adopt or unpack them: the recorded layout checked against the
// bytes, and the bytes used in place or reordered. Includes oneDNN: for model/*.cpp only.
#pragma once

#include <oneapi/dnnl/dnnl.hpp>

#include "common/status.hpp"
#include "model/packed_linear.hpp"

namespace ecgq {

// The layout `w` records, when it parses, has `ndims` dimensions and spans exactly w's bytes;
// else a bad_checkpoint error naming `what` ("packed weights"), the size and the layout text.
Expected<dnnl::memory::desc> stored_layout(const PackedLinear::Prepacked& w, int ndims,
                                           const std::string& what);

// w's weights in layout `wanted`: w's own bytes when `stored` is that layout (*in_place true),
// else reordered from `stored` into memory from `allocate` (*in_place false). Throws dnnl::error.
at::Tensor adopt_storage(const PackedLinear::Prepacked& w, const dnnl::memory::desc& stored,
                         const dnnl::memory::desc& wanted, const PackedLinear::Allocate& allocate,
                         bool* in_place);

}  // namespace ecgq
