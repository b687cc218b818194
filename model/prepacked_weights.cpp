// Stored packed weights: their layout checked, their bytes adopted or reordered.
#include "model/prepacked_weights.hpp"

#include <ATen/ATen.h>

#include "model/dnnl_cpu.hpp"

namespace ecgq {

Expected<dnnl::memory::desc> stored_layout(const PackedLinear::Prepacked& w, int ndims,
                                           const std::string& what, int terms) {
  const std::optional<dnnl::memory::desc> stored = DnnlCpu::layout_from_text(w.layout);
  if (!stored || stored->data.ndims != ndims ||
      stored->get_size() * static_cast<size_t>(terms) != static_cast<size_t>(w.bytes.numel()))
    return Status(ErrorCode::BadCheckpoint,
                  what + " of " + std::to_string(w.bytes.numel()) + " bytes do not match " +
                      (terms == 1 ? "their layout '" : std::to_string(terms) + " arrays of '") +
                      w.layout + "'");
  return *stored;
}

at::Tensor adopt_storage(const PackedLinear::Prepacked& w, const dnnl::memory::desc& stored,
                         const dnnl::memory::desc& wanted, const PackedLinear::Allocate& allocate,
                         bool* in_place, int terms) {
  *in_place = wanted == stored;
  if (*in_place) return w.bytes;
  at::Tensor storage = allocate(static_cast<int64_t>(wanted.get_size()) * terms);
  reorder_terms(w.bytes.data_ptr(), stored, storage.data_ptr(), wanted, terms);
  return storage;
}

void reorder_terms(const void* from, const dnnl::memory::desc& stored, void* to,
                   const dnnl::memory::desc& wanted, int terms) {
  for (int t = 0; t < terms; ++t) {
    dnnl::memory source(stored, DnnlCpu::get().engine(),
                        const_cast<char*>(static_cast<const char*>(from)) + t * stored.get_size());
    DnnlCpu::pack(source, wanted, static_cast<char*>(to) + t * wanted.get_size());
  }
}

}  // namespace ecgq
