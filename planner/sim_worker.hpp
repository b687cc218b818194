// One simulated ecgq-worker: the real SleepPolicy decides when it loads, serves and sleeps, as
// in WorkerService::compute_loop; only the forward pass and the load are replaced by the
// profile's times. It speaks MDP/Worker 0.2 to the planner's BrokerCore (READY with metadata,
// HEARTBEATs with its state, FINALs with results that carry timings and cold_start).
#pragma once

#include <deque>
#include <optional>
#include <string>
#include <vector>

#include "broker/state.hpp"
#include "planner/plan.hpp"
#include "protocol/protocol.hpp"
#include "worker/sleep_policy.hpp"

namespace ecgq::planner {

using broker::TimePoint;

// A simulated worker; its outputs are MDP frames for the broker and the time it next needs.
class SimWorker {
 public:
  // A worker named `worker_id`, warm at `now` when the cluster starts warm.
  SimWorker(std::string worker_id, const ClusterSpec& cluster, const ServiceProfile& profile,
            TimePoint now);

  // READY (with metadata) to send when it connects.
  mdp::Frames ready() const;
  // A HEARTBEAT carrying its state.
  mdp::Frames heartbeat() const;
  // A message from the broker at `now`; returns what it sends back.
  std::vector<mdp::Frames> on_message(const mdp::WorkerMessage& msg, TimePoint now);
  // Its own time came (a load or forward pass ended, or the idle timeout); returns what it sends.
  std::vector<mdp::Frames> on_timer(TimePoint now);
  // When it next needs on_timer(), if ever.
  std::optional<TimePoint> next_timer() const;

  // Loads it started (for jobs and on its own) and those for jobs.
  int64_t loads() const { return loads_; }
  int64_t wakes() const { return wakes_; }
  // Time with the model loaded or loading, and without it, up to `now`.
  double awake_s(TimePoint now) const;
  double asleep_s(TimePoint now) const;

 private:
  // A job received and not yet answered.
  struct Job {
    std::string reply_to;
    std::string id;
    TimePoint received;
    bool waited_for_model = false;  // the model was not warm when it arrived
    int segments = 1;
  };
  enum class Phase { Idle, Loading, Computing };

  // Runs the policy's next steps at `now` until it waits (or a phase is under way).
  void step(TimePoint now, std::vector<mdp::Frames>& out);
  void start_load(TimePoint now, std::vector<mdp::Frames>& out);
  void finish_load(TimePoint now, std::vector<mdp::Frames>& out);
  void start_batch(TimePoint now, std::vector<mdp::Frames>& out);
  // The forward passes of batch_ begin at `now`.
  void start_compute(TimePoint now);
  void finish_batch(TimePoint now, std::vector<mdp::Frames>& out);
  // Records the time spent in the current state and reports a change to the broker.
  void note_state(TimePoint now, std::vector<mdp::Frames>& out);

  std::string worker_id_;
  const ClusterSpec& cluster_;
  const ServiceProfile& profile_;
  SleepPolicy policy_;
  std::deque<Job> queue_;   // received, not started
  std::vector<Job> batch_;  // in the current forward pass
  Phase phase_ = Phase::Idle;
  TimePoint phase_end_;
  bool batch_after_load_ = false;  // the load was for the jobs in batch_
  double batch_load_ms_ = 0;       // the load the batch waited for
  WorkerState reported_;           // the state the broker last heard
  TimePoint state_since_;
  double awake_s_ = 0, asleep_s_ = 0;
  int64_t loads_ = 0, wakes_ = 0;
};

}  // namespace ecgq::planner
