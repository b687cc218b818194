// Runs decoded jobs through preprocessing and the model and builds their Results, in three phases
// (prepare, forward passes, finish) so that several jobs can share forward passes.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "model/model.hpp"
#include "protocol/decoded_job.hpp"
#include "protocol/schema.hpp"
#include "records/preprocess.hpp"
#include "worker/output_plan.hpp"

namespace ecgq {

// Settings that shape every job.
struct JobRunnerOptions {
  int64_t max_batch = 4;  // segments per forward pass
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

// One job between its phases: preprocessed by JobRunner::prepare (which lets go of the decoded
// body), filled by the forward passes of a BatchRunner, turned into a Result by JobRunner::finish.
struct PreparedJob {
  schema::Result result;  // worker-side fields so far; an error result once failed
  JobContext context;
  bool failed = false;          // an error is in `result`; no more forward passes for it
  bool reported = false;        // BatchRunner already handed it back
  std::vector<float> segments;  // [n_segments, in_leads, segment_samples]
  int64_t n_segments = 0;
  int64_t segment_size = 0;         // in_leads * segment_samples
  OutputPlan outputs;               // what to put in the result
  RunOptions run_options;           // what the forward passes compute (from `outputs`)
  std::vector<std::string> labels;  // the model's classifier labels (empty: no head)
  std::optional<std::chrono::steady_clock::time_point> deadline;  // on the worker's clock
  int64_t deadline_ms = 0;                                        // as asked, for messages
  std::vector<std::string> derived_leads;
  std::vector<std::string> ignored_channels;
  std::vector<std::string> masked_leads;  // given as zeros (the job's missing_leads: zero)

  // Per-segment outputs gathered from the forward passes, in segment order.
  int64_t segments_done = 0;
  int64_t embed_dim = 0;
  int64_t frames = 0;
  std::vector<float> seg_probs, seg_logits, seg_embed, seg_saliency;

  // Marks the job failed with `status` (the first failure wins).
  void fail(const Status& status);
  // deadline_exceeded naming `stage` when the deadline has passed, Ok otherwise.
  Status deadline_status(const char* stage) const;
};

// Turns decoded jobs into results; never throws (every failure becomes an error result).
class JobRunner {
 public:
  // Keeps the options for every job.
  explicit JobRunner(JobRunnerOptions options) : options_(std::move(options)) {}

  // Runs one job on `model` (nullptr when the model could not be loaded: `load_error` then says
  // why) and returns the Result: the three phases below for one job. A job that could not be
  // decoded gets its decoding error.
  schema::Result run(Expected<schema::DecodedJob> job, Model* model, const JobContext& context,
                     const Status& load_error = Status::Ok()) const;

  // Phase 1: checks the outputs against `model` and the deadline, then preprocesses, reading the
  // samples where they arrived and freeing the body once they are converted; failures (a decoding
  // error, `load_error`, a null model) leave the job `failed`.
  PreparedJob prepare(Expected<schema::DecodedJob> job, Model* model, const JobContext& context,
                      const Status& load_error = Status::Ok()) const;

  // Phase 3: the Result of a prepared job after its forward passes (or its error).
  schema::Result finish(PreparedJob& job) const;

  // Segments per forward pass (at least 1).
  int64_t max_batch() const { return options_.max_batch < 1 ? 1 : options_.max_batch; }

 private:
  // Sets the job's outputs (checked against the model), labels and deadline.
  Status plan(PreparedJob& job, const Model& model, const schema::Job& fields) const;
  // Converts and preprocesses the samples into segments, releasing the body on the way.
  Status preprocess(PreparedJob& job, const ModelInfo& info, schema::DecodedJob& decoded) const;
  // Adds the worker-side fields every result carries (worker id, model, cold start, timings).
  void stamp(schema::Result& result, const JobContext& context) const;

  JobRunnerOptions options_;
};

}  // namespace ecgq
