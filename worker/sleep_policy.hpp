// When the worker's model loads and sleeps: the one place of the worker's sleep/wake decisions,
// with no threads and no clock of its own, so that the serving loop, the unit tests and a
// capacity planner on simulated time drive the same state machine.
#pragma once

#include <chrono>
#include <optional>

#include "common/duration.hpp"
#include "protocol/worker_state.hpp"

namespace ecgq {

// The settings of the sleep/wake policy.
struct SleepPolicyOptions {
  Millis idle_timeout{15 * 60 * 1000};  // warm and idle this long -> asleep
  bool warm_on_start = true;            // load once at start, before any job asks
  Millis model_retry{30000};            // first delay before a failed load is tried again
};

// The worker's model state (cold, warming, warm, asleep) and the decisions that move it. The
// worker reports events with the time they happened and asks what to do next; every method is
// cheap and none reads a clock. Not thread-safe: the worker guards it with its job-queue lock,
// so that a job arriving while the model goes to sleep sees it asleep (and waits for a wake).
//
//   COLD --load--> WARMING --ok--> WARM --idle_timeout--> ASLEEP --load--> WARMING ...
//                          --failed--> FAILED --model_retry--> WARMING (the delay doubles after
//                                      each failure, up to 8 x model_retry; a success resets it)
//
// A load starts for a job (a wake: the job waits), for warm_on_start, or for keep_warm from the
// broker. Waking is the broker's name for a load a job started; the worker reports warming.
//
// The serving loop (WorkerService::compute_loop), and a simulated worker the same way:
//
//   switch (policy.next_step(now, !queue.empty())) {
//     case Step::Serve: if (policy.on_job_started(now)) { on_load_started(); load;
//                       on_load_finished(t, ok); } run the jobs; policy.on_job_finished(t);
//     case Step::Warm:  policy.on_load_started(); load; policy.on_load_finished(t, ok);
//     case Step::Sleep: policy.on_sleep(); free the model;
//     case Step::Wait:  wait for a job, keep_warm or policy.next_deadline();
//   }
class SleepPolicy {
 public:
  using TimePoint = std::chrono::steady_clock::time_point;

  // What the serving loop should do next.
  enum class Step {
    Serve,  // take the queued jobs (loading the model first when it is not warm)
    Warm,   // load the model with no job waiting (warm_on_start or keep_warm)
    Sleep,  // free the model: warm, idle for idle_timeout and not kept warm
    Wait,   // nothing until an event or next_deadline()
  };

  // A cold worker whose idle time counts from `now`.
  SleepPolicy(SleepPolicyOptions options, TimePoint now);

  // The model's state as the policy tracks it (warming while any load runs).
  WorkerState state() const { return state_; }
  // The state the worker reports to the broker: a retry of a failed load stays failed until it
  // succeeds, so that the broker sends no job to a load that will likely fail again (each such
  // job would spend one of its attempts on it).
  WorkerState reported_state() const { return retrying_ ? WorkerState::Failed : state_; }
  // Whether the broker asked to keep the model loaded.
  bool keep_warm() const { return keep_warm_; }

  // True when a job arriving now has to wait for a load (a cold start): the model is cold,
  // loading, or asleep (including a sleep that has begun while the model is still being freed).
  bool job_waits_for_model() const { return state_ != WorkerState::Warm; }
  // The serving loop took jobs at `now`; true when the model must be loaded first (a wake).
  bool on_job_started(TimePoint now);
  // The jobs taken are answered: the idle time restarts at `now` and automatic loads may retry.
  void on_job_finished(TimePoint now);
  // keep_warm from the broker's heartbeat; true when it changed.
  bool on_keep_warm(bool keep);
  // A load began (for a job or on its own): the state is warming.
  void on_load_started();
  // A load ended at `now`: warm, or failed (the next load is due after the retry delay).
  void on_load_finished(TimePoint now, bool ok);
  // The model cannot be loaded (found before any load, e.g. its file is missing) at `now`: as a
  // failed load, the state is failed until the retry delay has passed.
  void on_load_failed(TimePoint now);
  // The model is being freed (the serving loop acted on Step::Sleep): the state is asleep.
  void on_sleep();

  // What to do at `now` with `jobs_queued` jobs waiting.
  Step next_step(TimePoint now, bool jobs_queued) const;
  // Whether the model should load with no job asking (warm_on_start not yet done, or keep_warm).
  bool should_warm() const;
  // Whether the model should be freed at `now`: warm, idle for idle_timeout, not kept warm.
  bool should_sleep(TimePoint now) const;
  // Whether a failed model is due to be loaded again at `now`.
  bool should_retry(TimePoint now) const;
  // When should_sleep() or should_retry() turns true with no further event (nullopt: only an
  // event changes it).
  std::optional<TimePoint> next_deadline() const;

 private:
  SleepPolicyOptions options_;
  WorkerState state_ = WorkerState::Cold;
  bool keep_warm_ = false;
  bool warm_pending_;        // warm_on_start and no load has started yet
  bool serving_ = false;     // between on_job_started and on_job_finished
  bool retrying_ = false;    // a load started from failed is running
  TimePoint last_activity_;  // end of the last job or load: the idle time counts from it
  TimePoint retry_at_;       // failed: when the next load is due
  Millis retry_delay_;       // the delay after the next failure (doubles, reset by a success)
};

// The name of a step, for logs and test messages.
const char* step_name(SleepPolicy::Step step);

}  // namespace ecgq
