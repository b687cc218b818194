// The process's oneDNN CPU engine and stream, shared by every packed projection. Include only from
// .cpp files that use oneDNN directly: dnnl.hpp is a large header.
#pragma once

#include <oneapi/dnnl/dnnl.hpp>

namespace ecgq {

// One CPU engine and one in-order stream for the process. oneDNN's CPU runtime here is OpenMP
// (the same libgomp as LibTorch), so a primitive runs on the OpenMP pool that configure_threads
// sizes and returns when its work is done.
class DnnlCpu {
 public:
  // The process-wide instance, created on first use.
  static DnnlCpu& get();

  // The CPU engine primitives and memory objects are created on.
  const dnnl::engine& engine() const { return engine_; }
  // The stream primitives execute on (thread-safe for one caller at a time per model).
  dnnl::stream& stream() { return stream_; }

  // Scratch memory of at least `desc`'s size for one primitive execution on this thread. Every
  // primitive is created with a user scratchpad and borrows this one buffer: with oneDNN's
  // default each primitive would keep its own (tens of primitives per model).
  static dnnl::memory scratchpad(const dnnl::memory::desc& desc);

 private:
  DnnlCpu();

  dnnl::engine engine_;
  dnnl::stream stream_;
};

}  // namespace ecgq
