// `ecgq submit --resume RESULTS.jsonl`: which records already have an ok line, and making the file
// safe to append to after a crash.
#pragma once

#include <cstdint>
#include <string>
#include <unordered_set>

#include "common/status.hpp"

namespace ecgq::client {

// What a results file says.
struct ResumeState {
  std::unordered_set<std::string> ok_paths;  // paths with a line whose status is "ok"
  int64_t lines = 0;                         // complete JSON lines read
  int64_t bad_lines = 0;                     // lines that are not JSON objects (ignored)
  bool truncated_tail = false;               // the last line had no newline and was cut off
};

// Reads `path` (a missing file is an empty state). A last line without its newline (a crash
// mid-write) is cut off the file so that appended lines start on a line of their own; it does
// not count as ok.
Expected<ResumeState> load_resume(const std::string& path);

}  // namespace ecgq::client
