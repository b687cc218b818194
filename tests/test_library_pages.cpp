// release_library_pages (common/memory.cpp): the clean pages of shared libraries leave this
// process's RSS, the code still runs (it faults back from the page cache), relocated data keeps
// its contents, and ECGQ_DROP_LIBRARY_PAGES=0 keeps everything.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <cmath>
#include <regex>
#include <sstream>
#include <string>

#include "common/memory.hpp"

namespace ecgq {
namespace {

// Work that runs code and reads data of several shared libraries (libstdc++, libm, libc).
std::string library_work() {
  std::ostringstream out;
  out << std::regex_replace(std::string("ecg 12 leads"), std::regex("[0-9]+"), "N") << " "
      << std::lround(std::sqrt(1.0e6)) << " " << std::to_string(0.5);
  return out.str();
}

TEST(LibraryPages, CleanLibraryPagesLeaveTheRssAndTheCodeStillRuns) {
  ::unsetenv("ECGQ_DROP_LIBRARY_PAGES");
  const std::string before = library_work();
  const int64_t rss_before = resident_bytes();
  const int64_t dropped = release_library_pages();
  EXPECT_GT(dropped, 0) << "no library page was dropped";
  EXPECT_LT(resident_bytes(), rss_before) << "dropped " << dropped << " bytes";
  // The same work after: code refaulted from the page cache, relocated data (GOT, vtables in
  // RELRO) untouched because mappings with private copies are skipped.
  EXPECT_EQ(library_work(), before);
  EXPECT_EQ(library_work(), "ecg N leads 1000 0.500000");
}

TEST(LibraryPages, TurnedOffByTheEnvironment) {
  ::setenv("ECGQ_DROP_LIBRARY_PAGES", "0", 1);
  (void)library_work();
  EXPECT_EQ(release_library_pages(), 0);
  ::unsetenv("ECGQ_DROP_LIBRARY_PAGES");
}

}  // namespace
}  // namespace ecgq
