// Inputs of `ecgq submit`: paths (files or directories) turned lazily into jobs, one record at a
// time, so that a directory of a million records streams through a bounded window.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "client/record_discovery.hpp"
#include "common/schema.hpp"
#include "common/status.hpp"

namespace ecgq::client {

// What the command line says about every input.
struct InputOptions {
  double fs = 0;                       // sample rate override; .npy files default to 500 Hz
  std::vector<std::string> leads;      // lead names for files without names (default I..V6)
  std::string units;                   // units of unitless files ("" = mV)
  std::vector<std::string> outputs;    // outputs asked of the model
  std::optional<int64_t> deadline_ms;  // per-job budget
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

 private:
  std::vector<std::string> roots_;
  size_t next_root_ = 0;
  std::optional<RecordDiscovery> walk_;
  InputOptions options_;
};

}  // namespace ecgq::client
