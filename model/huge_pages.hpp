// Whether the model's memory is advised onto transparent huge pages. Torch-free.
#pragma once

#include <cstdlib>
#include <cstring>

namespace ecgq {

// True when ECGQ_HUGE_PAGES=1 (read at each allocation); off by default. On the AMD EPYC machines
// of the model tables 2 MiB pages cut the load's first-touch faults 512-fold (fp32 load 1.07 s ->
// 0.12 s); on the Intel VM of 2026-12-03 `madvise(MADV_HUGEPAGE)` made every load 0.5 to 3.4 s
// slower instead (the kernel zeroing 2 MiB pages the host had not backed yet; fp32 load 0.25 s
// with 4 KiB pages), with no gain in the forward pass (docs/performance.md, "Threads and the
// model file"). The default follows the machine measured last; measure a new host both ways.
inline bool huge_pages_wanted() {
  const char* v = std::getenv("ECGQ_HUGE_PAGES");
  return v != nullptr && std::strcmp(v, "1") == 0;
}

}  // namespace ecgq
