// `ecgq submit --resume RESULTS.jsonl`: which records are done, and a results file that holds
// exactly one row per record however many times a run is resumed.
#pragma once

#include <cstdint>
#include <string>
#include <unordered_set>

#include "common/status.hpp"

namespace ecgq::client {

// True for error codes that the same input will always get again (the record itself is wrong:
// missing leads, too short, bad samples, a malformed request or file). Resume does not re-send
// those records unless --retry-errors; every other error (no worker, deadline, worker lost,
// broker unreachable, model error, ...) is re-sent.
bool is_permanent_input_error(const std::string& code);

// What a results file says, after load_resume() made it one row per record.
struct ResumeState {
  std::unordered_set<std::string> done_paths;  // rows kept: ok, or a permanent input error
  int64_t ok = 0;                              // kept rows with status ok
  int64_t permanent_errors = 0;                // kept rows with a permanent input error
  int64_t to_retry = 0;                        // records whose rows were dropped to be re-sent
  int64_t rows_dropped = 0;                    // rows removed: duplicates, retried, unreadable
  int64_t bad_lines = 0;                       // lines that are not result objects (removed)
  bool truncated_tail = false;                 // the last line had no newline (removed)
};

// Reads `path` (a missing file is an empty state) and rewrites it, atomically (temp file +
// rename), to hold one row per record: for each path the ok row if there is one, else the last
// row; rows of records that will be re-sent (errors that are not permanent, or every error when
// `retry_errors`) are removed so the new run's row is the only one. Lines that are not result
// objects and a cut-off last line (a crash mid-write) are removed too.
Expected<ResumeState> load_resume(const std::string& path, bool retry_errors);

}  // namespace ecgq::client
