// The shared oneDNN CPU engine and stream.
#include "model/dnnl_cpu.hpp"

#include <cstdint>
#include <cstring>
#include <memory>
#include <sstream>
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

namespace {

// "a,b,c" of the first n values.
std::string join(const dnnl_dim_t* v, int n) {
  std::string out;
  for (int i = 0; i < n; ++i) out += (i ? "," : "") + std::to_string(v[i]);
  return out;
}

// Parses "a,b,c" into exactly n values (0 values: ""); false on anything else.
bool split(const std::string& text, int n, dnnl_dim_t* out) {
  if (n == 0) return text.empty();
  std::istringstream in(text);
  std::string item;
  int i = 0;
  while (std::getline(in, item, ',')) {
    if (i == n || item.empty() || item.size() > 18) return false;
    size_t used = 0;
    try {
      out[i++] = std::stoll(item, &used);
    } catch (...) {
      return false;
    }
    if (used != item.size() || out[i - 1] < 0) return false;
  }
  return i == n;
}

}  // namespace

std::string DnnlCpu::layout_text(const dnnl::memory::desc& layout) {
  const dnnl_memory_desc_t& d = layout.data;
  const dnnl_blocking_desc_t& b = d.format_desc.blocking;
  std::ostringstream out;
  out << "blocked;t=" << static_cast<int>(d.data_type) << ";n=" << d.ndims
      << ";d=" << join(d.dims, d.ndims) << ";p=" << join(d.padded_dims, d.ndims)
      << ";o=" << join(d.padded_offsets, d.ndims) << ";o0=" << d.offset0
      << ";s=" << join(b.strides, d.ndims) << ";b=" << b.inner_nblks
      << ";bs=" << join(b.inner_blks, b.inner_nblks) << ";bi=" << join(b.inner_idxs, b.inner_nblks)
      << ";x=" << d.extra.flags;
  return out.str();
}

std::optional<dnnl::memory::desc> DnnlCpu::layout_from_text(const std::string& text) {
  if (text.rfind("blocked;", 0) != 0) return std::nullopt;
  std::map<std::string, std::string> f;
  std::istringstream in(text.substr(8));
  std::string item;
  while (std::getline(in, item, ';')) {
    const size_t eq = item.find('=');
    if (eq == std::string::npos) return std::nullopt;
    f[item.substr(0, eq)] = item.substr(eq + 1);
  }
  dnnl_dim_t type = 0, ndims = 0, nblks = 0, offset0 = 0, flags = 0;
  if (!split(f["t"], 1, &type) || !split(f["n"], 1, &ndims) || ndims < 1 ||
      ndims > DNNL_MAX_NDIMS || !split(f["b"], 1, &nblks) || nblks > DNNL_MAX_NDIMS ||
      !split(f["o0"], 1, &offset0) || !split(f["x"], 1, &flags) || flags != 0)
    return std::nullopt;
  dnnl_memory_desc_t d;
  std::memset(&d, 0, sizeof d);
  d.ndims = static_cast<int>(ndims);
  d.data_type = static_cast<dnnl_data_type_t>(type);
  d.offset0 = offset0;
  d.format_kind = dnnl_blocked;
  dnnl_blocking_desc_t& b = d.format_desc.blocking;
  b.inner_nblks = static_cast<int>(nblks);
  if (!split(f["d"], d.ndims, d.dims) || !split(f["p"], d.ndims, d.padded_dims) ||
      !split(f["o"], d.ndims, d.padded_offsets) || !split(f["s"], d.ndims, b.strides) ||
      !split(f["bs"], b.inner_nblks, b.inner_blks) || !split(f["bi"], b.inner_nblks, b.inner_idxs))
    return std::nullopt;
  for (int i = 0; i < b.inner_nblks; ++i)
    if (b.inner_idxs[i] >= d.ndims || b.inner_blks[i] == 0) return std::nullopt;
  for (int i = 0; i < d.ndims; ++i)
    if (d.padded_dims[i] < d.dims[i]) return std::nullopt;
  dnnl::memory::desc layout(d);
  if (layout_text(layout) != text || layout.get_size() == 0) return std::nullopt;
  return layout;
}

DnnlCpu::DnnlCpu() : engine_(dnnl::engine::kind::cpu, 0), stream_(engine_) {}

}  // namespace ecgq
