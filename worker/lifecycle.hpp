// The worker's model: loading it (resolve, load, hash once, optional warm-up pass) and freeing
// it. When to do either is SleepPolicy's decision (worker/sleep_policy.hpp); this class only does.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>

#include "common/status.hpp"
#include "hub/hub_cache.hpp"
#include "model/model.hpp"
#include "protocol/schema.hpp"
#include "protocol/worker_state.hpp"

namespace ecgq {

// Turns a checkpoint reference (path or hf:// URI) into a local file.
using CheckpointResolver =
    std::function<Expected<ResolvedCheckpoint>(const std::string& reference)>;
// Builds a model from a local checkpoint file (ecgq::load_model in production).
using ModelLoader =
    std::function<Expected<std::unique_ptr<Model>>(const std::string& path, const LoadOptions&)>;

// The resolver used when none is given: resolve_checkpoint() with the HF_* environment.
Expected<ResolvedCheckpoint> resolve_with_environment(const std::string& reference);

// What to load and how.
struct LifecycleOptions {
  std::string checkpoint;  // reference as configured (reported as the model name)
  LoadOptions load;        // kind, precision, threads
};

// Where the time of one successful warm-up went, in milliseconds.
struct WarmReport {
  double download_ms = 0;
  double load_ms = 0;    // resolve excluded, load_model only
  double warmup_ms = 0;  // the forward pass on zeros (0 when skipped)
  double total_ms = 0;
};

// Memory before and after one sleep.
struct SleepReport {
  int64_t rss_before = 0;
  int64_t rss_after = 0;
};

// Owns the model; load()/unload() run on the compute thread, identity() and last_warm() from any
// thread.
class ModelLifecycle {
 public:
  // Keeps what to load, how, and where checkpoints come from.
  ModelLifecycle(LifecycleOptions options, ModelLoader loader,
                 CheckpointResolver resolver = nullptr);
  ~ModelLifecycle();
  ModelLifecycle(const ModelLifecycle&) = delete;
  ModelLifecycle& operator=(const ModelLifecycle&) = delete;

  // Loads the model (`from` is the state the load starts in, for the log) and, when
  // `warm_up_pass`, runs one forward pass on zeros (a wake for a job skips it: the job's own pass
  // pays the one-time costs instead of an extra pass). A failure (code model_error) names the
  // checkpoint and reason and leaves no model.
  Expected<WarmReport> load(WorkerState from, bool warm_up_pass = true);
  // Finds the checkpoint before any load (the file exists, or the hub download succeeds) and
  // learns its sha256, so that READY can name the model; a failure (model_error) is remembered
  // as the reason, as a failed load's is.
  Status preflight();
  // Destroys the model and returns freed heap to the kernel.
  SleepReport unload();
  // The loaded model, or nullptr.
  Model* model() { return model_.get(); }
  // Model identity for results and READY (sha256 known after the first load).
  schema::ModelIdentity identity() const;
  // The last successful warm-up.
  WarmReport last_warm() const;
  // Why the last preflight or load failed ("" after a success).
  std::string failure() const;

 private:
  // Logs a failed load or preflight, keeps `reason` for failure() and returns the model_error.
  Status record_failure(const std::string& reason);

  LifecycleOptions options_;
  ModelLoader loader_;
  CheckpointResolver resolver_;
  std::unique_ptr<Model> model_;
  mutable std::mutex mutex_;  // guards identity_ and last_warm_
  schema::ModelIdentity identity_;
  WarmReport last_warm_;
  std::string failure_;
};

}  // namespace ecgq
