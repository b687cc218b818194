#include "common/memory.hpp"

#include <malloc.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>

namespace ecgq {

int64_t resident_bytes() {
  std::ifstream statm("/proc/self/statm");
  int64_t size_pages = 0;
  int64_t resident_pages = 0;
  if (!(statm >> size_pages >> resident_pages)) return 0;
  return resident_pages * static_cast<int64_t>(::sysconf(_SC_PAGESIZE));
}

bool release_free_memory() {
#if defined(__GLIBC__)
  return ::malloc_trim(0) != 0;
#else
  return false;
#endif
}

namespace {

// One mapping of /proc/self/smaps: its range, whether it may be dropped, and its counts (KiB).
struct Mapping {
  uintptr_t begin = 0, end = 0;
  bool library = false;  // a read-only mapping of a shared library file
  int64_t rss_kib = 0;
  int64_t anonymous_kib = -1;  // -1 until its line is read
};

// Whether `path` names a shared library: its file name has ".so" at its end or before a version
// (libtorch_cpu.so.1.13), so that a model file under a directory "models.sorted" is not one.
bool names_library(const std::string& path) {
  const size_t slash = path.rfind('/');
  const std::string name = path.substr(slash == std::string::npos ? 0 : slash + 1);
  for (size_t at = name.find(".so"); at != std::string::npos; at = name.find(".so", at + 1))
    if (at + 3 == name.size() || name[at + 3] == '.') return true;
  return false;
}

// A mapping's first smaps line ("begin-end perms offset dev inode path"): a shared library's
// read-only private mapping when its path names a .so file and its permissions allow no writing.
bool parse_header(const std::string& line, Mapping* m) {
  unsigned long begin = 0, end = 0;
  char perms[5] = {0};
  int path_at = 0;
  if (std::sscanf(line.c_str(), "%lx-%lx %4s %*s %*s %*s %n", &begin, &end, perms, &path_at) < 3)
    return false;
  const std::string path = path_at > 0 ? line.substr(static_cast<size_t>(path_at)) : "";
  m->begin = begin;
  m->end = end;
  m->library =
      !path.empty() && path[0] == '/' && names_library(path) && perms[1] != 'w' && perms[3] == 'p';
  return true;
}

}  // namespace

int64_t release_library_pages() {
  if (const char* v = std::getenv("ECGQ_DROP_LIBRARY_PAGES"); v && std::strcmp(v, "0") == 0)
    return 0;
  std::ifstream smaps("/proc/self/smaps");
  std::string line;
  int64_t dropped_kib = 0;
  Mapping m;
  auto drop = [&] {
    // Only when smaps said there is no private copy in it (a field missing: leave it).
    if (m.library && m.anonymous_kib == 0 && m.rss_kib > 0 &&
        ::madvise(reinterpret_cast<void*>(m.begin), m.end - m.begin, MADV_DONTNEED) == 0)
      dropped_kib += m.rss_kib;
  };
  bool have = false;
  while (std::getline(smaps, line)) {
    Mapping next;
    if (!line.empty() && std::isxdigit(static_cast<unsigned char>(line[0])) &&
        line.find('-') != std::string::npos && parse_header(line, &next)) {
      if (have) drop();
      m = next;
      have = true;
    } else if (line.rfind("Rss:", 0) == 0) {
      m.rss_kib = std::atoll(line.c_str() + 4);
    } else if (line.rfind("Anonymous:", 0) == 0) {
      m.anonymous_kib = std::atoll(line.c_str() + 10);
    }
  }
  if (have) drop();
  return dropped_kib * 1024;
}

}  // namespace ecgq
