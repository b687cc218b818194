// Runs one job body through preprocessing and the model and builds its Result.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

#include "common/preprocess.hpp"
#include "common/schema.hpp"
#include "worker/model.hpp"

namespace ecgq {

// Settings that shape every job.
struct JobRunnerOptions {
  int64_t max_batch = 8;  // segments per forward pass
  PreprocessLimits limits;
  std::string worker_id;
};

// What the worker knows about one job beyond its body.
struct JobContext {
  std::chrono::steady_clock::time_point received;  // arrival at the worker
  bool cold_start = false;                         // the job waited for a model load
  double wake_ms = 0;                              // time it waited for the model
  double download_ms = 0;                          // part of wake_ms
  double load_ms = 0;                              // part of wake_ms
  schema::ModelIdentity model;                     // identity of the model that runs it
};

// Turns job bodies into results; never throws (every failure becomes an error result).
class JobRunner {
 public:
  // Keeps the options for every job.
  explicit JobRunner(JobRunnerOptions options) : options_(std::move(options)) {}

  // Runs `body` on `model` (nullptr when the model could not be loaded: `load_error` then says
  // why) and returns the Result.
  schema::Result run(const std::string& body, Model* model, const JobContext& context,
                     const Status& load_error = Status::Ok()) const;

  // An error Result for `body` carrying the worker-side fields (id/attempts/meta when readable).
  schema::Result error(const std::string& body, const JobContext& context,
                       const Status& status) const;

 private:
  Expected<schema::Result> compute(const schema::Job& job, Model& model, const JobContext& context,
                                   schema::Result result) const;
  void finish(schema::Result& result, const JobContext& context) const;

  JobRunnerOptions options_;
};

}  // namespace ecgq
