// Process memory figures for the worker's sleep/wake accounting.
#pragma once

#include <cstdint>

namespace ecgq {

// Resident set size of this process in bytes (from /proc/self/statm), or 0 when unreadable.
int64_t resident_bytes();

// Hands free heap pages back to the kernel (glibc malloc_trim(0)); true when something was
// released.
bool release_free_memory();

// Unmaps from this process the resident pages of its shared libraries' read-only mappings that
// hold no private copy (clean file pages: code, symbol and relocation tables), and returns their
// bytes. What a later call touches again comes back by a minor fault from the page cache, which
// keeps them (shared with other processes, reclaimable); what only start-up touched (LibTorch's
// operator registration and relocations: ~27 MB of a worker's RSS) stays out. Writable mappings
// and those with private copies (relocated RELRO data) are left alone: dropping those would lose
// their contents. Not for a process that may dlopen a library with text relocations meanwhile
// (its text is written while the loader holds it writable; x86-64 shared objects have none).
// ECGQ_DROP_LIBRARY_PAGES=0 turns it off (returns 0).
int64_t release_library_pages();

}  // namespace ecgq
