// Weights a model file stored in a packed layout (PackedLinear::Prepacked), as the projections
// and the positional convolution adopt or unpack them: the recorded layout checked against the
// bytes, and the bytes used in place or reordered. Includes oneDNN: for model/*.cpp only.
#pragma once

#include <oneapi/dnnl/dnnl.hpp>

#include "common/status.hpp"
#include "model/packed_linear.hpp"

namespace ecgq {

// The layout `w` records, when it parses, has `ndims` dimensions and `terms` arrays of it span
// exactly w's bytes (a split projection stores hi and lo back to back); else a bad_checkpoint
// error naming `what` ("packed weights"), the size and the layout text.
Expected<dnnl::memory::desc> stored_layout(const PackedLinear::Prepacked& w, int ndims,
                                           const std::string& what, int terms = 1);

// Reorders `terms` arrays of layout `stored` lying back to back at `from` into as many arrays of
// layout `wanted` back to back at `to`. Throws dnnl::error.
void reorder_terms(const void* from, const dnnl::memory::desc& stored, void* to,
                   const dnnl::memory::desc& wanted, int terms);

// w's `terms` arrays in layout `wanted`, back to back: w's own bytes when `stored` is that layout
// (*in_place true), else each reordered from `stored` into memory from `allocate` (*in_place
// false). Throws dnnl::error.
at::Tensor adopt_storage(const PackedLinear::Prepacked& w, const dnnl::memory::desc& stored,
                         const dnnl::memory::desc& wanted, const PackedLinear::Allocate& allocate,
                         bool* in_place, int terms = 1);

}  // namespace ecgq
