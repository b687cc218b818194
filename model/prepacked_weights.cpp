// Stored packed weights: their layout checked, their bytes adopted or reordered.
#include "model/prepacked_weights.hpp"

#include <ATen/ATen.h>

#include "model/dnnl_cpu.hpp"

namespace ecgq {

Expected<dnnl::memory::desc> stored_layout(const PackedLinear::Prepacked& w, int ndims,
                                           const std::string& what) {
  const std::optional<dnnl::memory::desc> stored = DnnlCpu::layout_from_text(w.layout);
  if (!stored || stored->data.ndims != ndims ||
      stored->get_size() != static_cast<size_t>(w.bytes.numel()))
    return Status(ErrorCode::BadCheckpoint, what + " of " + std::to_string(w.bytes.numel()) +
                                                " bytes do not match their layout '" + w.layout +
                                                "'");
  return *stored;
}

at::Tensor adopt_storage(const PackedLinear::Prepacked& w, const dnnl::memory::desc& stored,
                         const dnnl::memory::desc& wanted, const PackedLinear::Allocate& allocate,
                         bool* in_place) {
  *in_place = wanted == stored;
  if (*in_place) return w.bytes;
  at::Tensor storage = allocate(static_cast<int64_t>(wanted.get_size()));
  dnnl::memory from(stored, DnnlCpu::get().engine(), w.bytes.data_ptr());
  DnnlCpu::pack(from, wanted, storage.data_ptr());
  return storage;
}

}  // namespace ecgq
