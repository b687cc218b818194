// Whether the model's memory is advised onto transparent huge pages. Torch-free.
#pragma once

#include <cstdlib>
#include <cstring>

namespace ecgq {

// True unless ECGQ_HUGE_PAGES=0 (read at each allocation). On the AMD EPYC machines of the
// model tables 2 MiB pages cut the load's first-touch faults 512-fold (fp32 load 1.07 s -> 0.12
// s); on the VM of 2026-12-03 `madvise(MADV_HUGEPAGE)` made the load 2 to 5 s slower instead,
// the kernel zeroing 2 MiB pages the host had not backed yet, with no gain in the forward pass
// (docs/performance.md, "Threads and the model file"): measure the load on a new host both ways.
inline bool huge_pages_wanted() {
  const char* v = std::getenv("ECGQ_HUGE_PAGES");
  return v == nullptr || std::strcmp(v, "0") != 0;
}

}  // namespace ecgq
