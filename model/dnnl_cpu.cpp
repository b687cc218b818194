// The shared oneDNN CPU engine and stream.
#include "model/dnnl_cpu.hpp"

#include <cstdint>
#include <memory>
#include <vector>

namespace ecgq {

DnnlCpu& DnnlCpu::get() {
  static DnnlCpu instance;
  return instance;
}

dnnl::memory DnnlCpu::scratchpad(const dnnl::memory::desc& desc) {
  // Grows to the largest need seen on this thread; freed when the thread ends. Not zeroed (a
  // vector's resize would write every byte, touching pages oneDNN may never use).
  thread_local std::unique_ptr<uint8_t[]> buffer;
  thread_local size_t size = 0;
  if (size < desc.get_size()) {
    size = desc.get_size();
    buffer.reset(new uint8_t[size]);
  }
  return dnnl::memory(desc, get().engine(), buffer.get());
}

dnnl::memory DnnlCpu::pack(dnnl::memory source, const dnnl::memory::desc& layout, void* storage) {
  dnnl::memory packed(layout, get().engine(), storage);
  dnnl::reorder(source, packed).execute(get().stream(), source, packed);
  get().stream().wait();
  return packed;
}

DnnlCpu::DnnlCpu() : engine_(dnnl::engine::kind::cpu, 0), stream_(engine_) {}

}  // namespace ecgq
