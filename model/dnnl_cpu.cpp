// The shared oneDNN CPU engine and stream.
#include "model/dnnl_cpu.hpp"

namespace ecgq {

DnnlCpu& DnnlCpu::get() {
  static DnnlCpu instance;
  return instance;
}

DnnlCpu::DnnlCpu() : engine_(dnnl::engine::kind::cpu, 0), stream_(engine_) {}

}  // namespace ecgq
