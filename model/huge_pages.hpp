// Whether the model's memory is advised onto transparent huge pages. Torch-free.
#pragma once

#include <cstdlib>
#include <cstring>

namespace ecgq {

// True only with ECGQ_HUGE_PAGES=1 (read at each allocation). Off by default: on a virtual
// machine `madvise(MADV_HUGEPAGE)` made the first touch of a model's memory (the load) 2 to 5 s
// slower, the kernel zeroing 2 MiB pages the host had not backed yet, with no gain in the
// forward pass (docs/performance.md, "Threads and the model file").
inline bool huge_pages_wanted() {
  const char* v = std::getenv("ECGQ_HUGE_PAGES");
  return v != nullptr && std::strcmp(v, "1") == 0;
}

}  // namespace ecgq
