// The process's oneDNN CPU engine and stream, shared by every packed projection. Include only from
// .cpp files that use oneDNN directly: dnnl.hpp is a large header.
#pragma once

#include <cstdint>
#include <map>
#include <oneapi/dnnl/dnnl.hpp>
#include <optional>
#include <string>
#include <vector>

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

  // `source` reordered into `layout` in `storage` (at least layout.get_size() bytes) and waited
  // for: how every packed weight is made at load.
  static dnnl::memory pack(dnnl::memory source, const dnnl::memory::desc& layout, void* storage);

  // A blocked layout as one line of text without spaces (a model file stores it beside weights
  // packed in it): type, dims, padding, strides and inner blocks, every field oneDNN compares.
  static std::string layout_text(const dnnl::memory::desc& layout);
  // The layout `text` describes, or nothing when it is not one layout_text wrote (another
  // format, a damaged field, a layout with extra flags such as int8 compensation).
  static std::optional<dnnl::memory::desc> layout_from_text(const std::string& text);

 private:
  DnnlCpu();

  dnnl::engine engine_;
  dnnl::stream stream_;
};

// The row count packed weight layouts are chosen for (2 segments of 156 frames); the same layout
// serves every M (each primitive is created with it on first use, or fails).
constexpr int64_t kLayoutRows = 312;

// A projection's matmul primitives, one per row count M (segments x frames changes with the
// batch), the last kMaxShapes created kept: a worker sees a few batch sizes, and a primitive for
// a runtime M would be oneDNN 2.6's reference kernel.
class MatmulsByRows {
 public:
  // A primitive and the size of the scratchpad it borrows (DnnlCpu::scratchpad).
  struct Entry {
    dnnl::matmul primitive;
    dnnl::memory::desc scratchpad;
  };
  // Primitives kept per projection.
  static constexpr size_t kMaxShapes = 8;

  // The primitive for `rows`, created from `describe(rows)` (a matmul primitive_desc) when new.
  template <typename Describe>
  const Entry& get(int64_t rows, const Describe& describe) {
    if (const Entry* e = find(rows)) return *e;
    dnnl::matmul::primitive_desc pd = describe(rows);
    return put(rows, Entry{dnnl::matmul(pd), pd.scratchpad_desc()});
  }

  // The primitive for `rows` when there is one, else nullptr.
  const Entry* find(int64_t rows) const {
    auto it = by_rows_.find(rows);
    return it == by_rows_.end() ? nullptr : &it->second;
  }

  // Keeps `entry` for `rows` unless one is there already; returns the one kept.
  const Entry& put(int64_t rows, Entry entry) {
    if (const Entry* e = find(rows)) return *e;
    if (order_.size() >= kMaxShapes) {
      by_rows_.erase(order_.front());
      order_.erase(order_.begin());
    }
    order_.push_back(rows);
    return by_rows_.emplace(rows, std::move(entry)).first->second;
  }

 private:
  std::map<int64_t, Entry> by_rows_;  // primitive per M
  std::vector<int64_t> order_;        // M in order of creation (eviction)
};

}  // namespace ecgq
