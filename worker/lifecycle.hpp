// The worker's model state machine: COLD -> WARMING -> WARM -> ASLEEP -> WARMING ...
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>

#include "hub/hub_cache.hpp"
#include "protocol/schema.hpp"
#include "common/status.hpp"
#include "model/model.hpp"

namespace ecgq {

// Where the model of a worker is in its life.
enum class ModelState { Cold, Warming, Warm, Asleep };

// The wire name of a state ("cold", "warming", "warm", "asleep").
const char* state_name(ModelState state);

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

// Owns the model and its state; warm()/sleep() run on the compute thread, state() from any thread.
class ModelLifecycle {
 public:
  // `on_change` is called (on the calling thread) after every state change.
  ModelLifecycle(LifecycleOptions options, ModelLoader loader,
                 CheckpointResolver resolver = nullptr,
                 std::function<void(ModelState)> on_change = nullptr);
  ~ModelLifecycle();
  ModelLifecycle(const ModelLifecycle&) = delete;
  ModelLifecycle& operator=(const ModelLifecycle&) = delete;

  // The current state; safe from any thread.
  ModelState state() const { return state_.load(); }
  // Loads the model and, when `warm_up_pass`, runs one forward pass on zeros (a wake for a job
  // skips it: the job's own pass pays the one-time costs instead of an extra pass); on failure
  // the state returns to Cold and the Status (code model_error) names the checkpoint and reason.
  Expected<WarmReport> warm(bool warm_up_pass = true);
  // Marks the worker asleep without freeing anything yet (call under the job-queue lock so that a
  // job arriving now sees the new state).
  void begin_sleep();
  // Destroys the model and returns freed heap to the kernel; state must already be Asleep.
  SleepReport finish_sleep();
  // The loaded model, or nullptr when not Warm.
  Model* model() { return model_.get(); }
  // Model identity for results and READY (sha256 known after the first load).
  schema::ModelIdentity identity() const;
  // The last successful warm-up.
  WarmReport last_warm() const;
  // Resident set size measured after the last sleep or warm-up (0 before either).
  int64_t last_rss() const { return last_rss_.load(); }

 private:
  void set_state(ModelState s);

  LifecycleOptions options_;
  ModelLoader loader_;
  CheckpointResolver resolver_;
  std::function<void(ModelState)> on_change_;
  std::atomic<ModelState> state_{ModelState::Cold};
  std::atomic<int64_t> last_rss_{0};
  std::unique_ptr<Model> model_;
  mutable std::mutex mutex_;  // guards identity_ and last_warm_
  schema::ModelIdentity identity_;
  WarmReport last_warm_;
};

}  // namespace ecgq
