// Process memory figures for the worker's sleep/wake accounting.
#pragma once

#include <cstdint>

namespace ecgq {

// Resident set size of this process in bytes (from /proc/self/statm), or 0 when unreadable.
int64_t resident_bytes();

// Hands free heap pages back to the kernel (glibc malloc_trim(0)); true when something was
// released.
bool release_free_memory();

}  // namespace ecgq
