// Inputs of `ecgq submit`: paths (files or directories) turned lazily into jobs, one record at a
// time, so that a directory of a million records streams through a bounded window.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/status.hpp"
#include "protocol/schema.hpp"
#include "records/record_discovery.hpp"

namespace ecgq::client {

// What the command line says about every input.
struct InputOptions {
  double fs = 0;                       // sample rate override; .npy files default to 500 Hz
  std::vector<std::string> leads;      // lead names for files without names (default I..V6)
  std::string units;                   // units of unitless files ("" = mV)
  std::vector<std::string> outputs;    // outputs asked of the model
  std::optional<int64_t> deadline_ms;  // per-job budget
  std::string model_sha256;            // run only on this model ("" = any of the service's)
  std::string missing_leads;  // "zero": leads that cannot be derived go to the model as zeros
  // Longer records fail locally with too_long: 3600 s of 12 leads at 1000 Hz is 86.4 MB as int16
  // (WFDB, .mat) or f32 (86.4 MB per 30 min), under the broker's 128 MiB max_message_bytes.
  double max_record_seconds = 3600;
};

// One input record: the path and its job, or why there is none.
struct Submission {
  std::string path;
  Expected<schema::Job> job;
};

// Reads one record and builds its job (the seam between file formats and the queue).
Expected<schema::Job> job_from_path(const std::string& path, const InputOptions& options);

// Yields the records under `roots` in order, reading each only when asked.
class JobSource {
 public:
  // Walks `roots` (files or directories) lazily.
  JobSource(std::vector<std::string> roots, InputOptions options);
  // The next record, or nullopt when every root is exhausted; missing roots yield an error.
  std::optional<Submission> next();
  // Paths for which `skip` is true are passed over unread (resume); counted in passed_over().
  void set_skip(std::function<bool(const std::string&)> skip) { skip_ = std::move(skip); }
  // Files under directory roots that are not records (signal, annotation, README, dotfiles).
  int64_t skipped_files() const;
  // Records passed over because `skip` said so.
  int64_t passed_over() const { return passed_over_; }

 private:
  std::vector<std::string> roots_;
  size_t next_root_ = 0;
  std::optional<RecordDiscovery> walk_;
  InputOptions options_;
  std::function<bool(const std::string&)> skip_;
  int64_t skipped_done_ = 0;  // skipped files of finished walks
  int64_t passed_over_ = 0;
};

}  // namespace ecgq::client
