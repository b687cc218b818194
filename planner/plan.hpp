// The capacity planner's inputs and outputs: a cluster (workers and the sleep/wake settings), a
// traffic of arrivals and a service profile go in; latencies, cold starts, wakes and worker-hours
// come out. simulation.cpp computes them by running the broker's and the worker's own policy
// code (BrokerCore, SleepPolicy) on simulated time.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "common/duration.hpp"
#include "planner/arrivals.hpp"
#include "planner/profile.hpp"

namespace ecgq::planner {

// The cluster being planned, in the settings' own terms.
struct ClusterSpec {
  int workers = 1;                      // ecgq-worker processes
  int capacity = 2;                     // the worker setting `capacity`
  int max_batch = 4;                    // the worker setting `max_batch` (segments per pass)
  Millis idle_timeout{15 * 60 * 1000};  // the worker setting `idle_timeout`
  int keep_warm = 0;                    // the broker setting `keep_warm`
  bool initial_warm = true;             // workers start warm (else asleep)
  int64_t max_queue = 10000;            // the broker setting `max_queue`
  Millis service_wait{60000};           // the broker setting `service_wait`
  std::optional<Millis> deadline;       // every job's deadline_ms, when set
};

// What the simulation saw.
struct PlanResult {
  int64_t jobs = 0;             // arrivals
  int64_t ok = 0;               // answered with a result
  int64_t cold_starts = 0;      // results with cold_start: the job waited for a model load
  int64_t wakes = 0;            // model loads for jobs (asleep or cold workers woken)
  int64_t loads = 0;            // every model load (wakes, keep_warm and start-up loads)
  int64_t queue_full = 0;       // refused: max_queue
  int64_t deadline_missed = 0;  // deadline_exceeded
  int64_t other_errors = 0;     // any other error result
  double p50_ms = 0, p95_ms = 0, p99_ms = 0, max_ms = 0;  // arrival to result, answered jobs
  double worker_hours_awake = 0;   // summed over workers: model loaded or loading
  double worker_hours_asleep = 0;  // summed over workers: model not in memory
  int64_t peak_queue = 0;          // most jobs waiting in the broker at once
  double simulated_s = 0;          // simulated time covered
};

// Runs `arrivals` through `cluster` with `profile`'s service times, for at least `duration_s`
// simulated seconds (and until every job is answered).
PlanResult simulate(const ClusterSpec& cluster, const ServiceProfile& profile,
                    const std::vector<Arrival>& arrivals, double duration_s);

}  // namespace ecgq::planner
