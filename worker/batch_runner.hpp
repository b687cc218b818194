// Forward passes shared by several prepared jobs: their segments are concatenated and run in
// passes of at most max_batch segments (a job's segments may span passes).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "worker/job_runner.hpp"
#include "model/model.hpp"

namespace ecgq {

// One forward pass as it ran.
struct PassReport {
  int64_t segments = 0;  // rows of the pass
  int64_t jobs = 0;      // jobs with segments in it
  double ms = 0;         // wall time of model.run
  bool ok = true;        // false: the pass failed and its jobs got the error
};

// Runs the forward passes of a batch of prepared jobs on one model; never throws.
class BatchRunner {
 public:
  // Called once per job of the batch, with its index, as soon as it has all its outputs or failed.
  using JobDone = std::function<void(size_t index)>;

  // Passes hold at most `max_batch` segments (at least 1).
  explicit BatchRunner(int64_t max_batch) : max_batch_(max_batch < 1 ? 1 : max_batch) {}

  // Runs the forward passes of `jobs`: fills the per-segment outputs, infer_ms, batch_segments and
  // batch_jobs of every job that has not failed; jobs asking for different RunOptions never share
  // a pass. Jobs already failed are handed to `done` first. Returns the passes in the order they
  // ran.
  std::vector<PassReport> run_passes(const std::vector<PreparedJob*>& jobs, Model& model,
                                     const JobDone& done = nullptr) const;

 private:
  // A run of consecutive segments of one job inside a pass.
  struct Slice {
    size_t index;  // into the batch
    int64_t start;
    int64_t count;
  };

  // Runs one forward pass over `slices` (`rows` segments in all); its jobs fail together.
  PassReport run_pass(const std::vector<PreparedJob*>& jobs, const std::vector<Slice>& slices,
                      int64_t rows, Model& model) const;
  // Hands each slice's rows of a pass's `out` to its job; an error when `out` does not fit.
  static Status scatter(const std::vector<PreparedJob*>& jobs, const std::vector<Slice>& slices,
                        const PassReport& pass, const ModelOutput& out, const Model& model);

  int64_t max_batch_;
};

}  // namespace ecgq
