// The broker's state in three plain structs: a job record, a worker and a service. BrokerCore
// owns them and applies every protocol rule; these hold data only.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "broker/drain_rate.hpp"
#include "broker/service_queue.hpp"
#include "common/time.hpp"
#include "protocol/protocol.hpp"
#include "protocol/schema.hpp"
#include "protocol/worker_state.hpp"

namespace ecgq::broker {

// The broker's clock is injected (BrokerCore never reads one); its time points are steady ones.
using TimePoint = SteadyClock::time_point;

// One failed attempt of a job: which worker and why, for re-dispatch and the dead-letter list.
struct FailedAttempt {
  std::string worker;      // the worker's id (worker_id, else its peer name)
  std::string worker_key;  // its peer key: a re-dispatch prefers another worker
  std::string code;        // error code (model_error, worker_lost, bad_result, ...)
  std::string message;     // why, cut for logs and mmi.status
};

// The broker's record of one client request from receipt until its FINAL, queued or in flight.
// (Not schema::Job, the decoded ecgq job body: the broker forwards bodies it does not hold
// decoded, and serves generic services whose bodies are not jobs at all.)
struct JobRecord {
  uint64_t seq = 0;         // broker sequence number, unique per broker run
  std::string token;        // this dispatch's 8-byte token: the "client address" workers echo
  std::string id;           // ecgq job id (client's or assigned), "#seq" for other services
  std::string assigned_id;  // the id the broker assigned (empty when the client chose one)
  std::string client;       // peer key of the client (socket byte + routing id)
  std::string service;      // service name as the client wrote it
  mdp::Frames body;         // the request body exactly as received
  bool ecgq_body = false;   // the body is an ecgq msgpack job (its service is an ecgq service)
  std::string content_key;  // result-cache key from the one decode on receipt; "" = not cached
  int64_t attempts = 0;     // dispatches so far
  TimePoint received;       // broker receipt
  std::optional<TimePoint> deadline;  // receipt + deadline_ms, when the job has one
  TimePoint dispatched_at;            // last dispatch, for service-time estimates
  std::string worker;                 // peer key of the worker while in flight
  bool finished = false;     // the broker sent its own FINAL (an error): nothing may follow it
  std::string submitter;     // who may read it by id: the CURVE key, "" without CURVE
  bool journaled = false;    // its Accept record is written: its later changes are journaled too
  bool accepted = false;     // its Accept record is durable (the producer was told `accepted`)
  // With a journal, the REQUEST of this dispatch until its Dispatch record is durable: a job in
  // flight when the broker dies is then always dispatched again with attempt + 1.
  mdp::Frames held_request;
  std::string model_sha256;  // only a worker with this model may run it ("" = any)
  TimePoint running_until;   // dispatched_at + max_job_time of its service
  std::vector<FailedAttempt> failures;  // its failed attempts, oldest first
  std::optional<TimePoint>
      wait_for_worker;  // without a worker, waits until then (not service_wait)

  // Whom queue fairness and max_queue_per_client count this job against: its CURVE key, so a
  // key that opens many connections is still one client; its connection when keys are off.
  const std::string& owner() const { return submitter.empty() ? client : submitter; }
};

// A registered worker.
struct Worker {
  std::string key;                        // socket byte + routing id
  std::string service;                    // the service it registered for
  std::string worker_id;                  // from READY metadata, else the hex routing id
  bool extended = false;                  // sent READY metadata: it understands extension frames
  int64_t capacity = 1;                   // jobs it accepts at once
  WorkerState state = WorkerState::Warm;  // as last reported (or set by a wake-up dispatch)
  std::map<std::string, std::shared_ptr<JobRecord>> in_flight;  // by token
  TimePoint expiry;             // lost when no traffic arrives before this
  TimePoint last_seen;          // last message of any kind
  uint64_t jobs_done = 0;       // FINALs received
  int64_t rss_bytes = -1;       // from heartbeat status, -1 when unknown
  schema::ModelIdentity model;  // from READY metadata and heartbeat status
  int64_t pid = 0;              // from READY metadata
  std::string host;             // from READY metadata
  bool keep_warm = false;       // what the broker last told it
  std::string reason;           // state failed: why its model cannot be loaded
  bool draining = false;        // a rollout replaced its model: no new jobs, then out
  bool held_back = false;       // max_job_time took a job back: no jobs until a FINAL or READY
  int64_t failures_in_row = 0;  // worker-side failures since its last good answer
  std::string out_of_dispatch;  // why it gets no jobs until it re-registers; "" = dispatchable

  // Jobs it can still take.
  int64_t free_slots() const { return capacity - static_cast<int64_t>(in_flight.size()); }
  // True when dispatch may give it jobs (it has not been held back or taken out).
  bool dispatchable() const { return !held_back && out_of_dispatch.empty(); }
  // State for mmi.status: "busy" is warm with jobs in flight.
  const char* shown_state() const {
    return state == WorkerState::Warm && !in_flight.empty() ? "busy" : state_name(state);
  }
};

// A service: its queue, its workers and a service-time estimate for retry_after_ms.
struct Service {
  std::string name;                  // as clients and workers spell it
  bool ecgq_jobs = false;            // its bodies are ecgq jobs (setting ecgq_services)
  ServiceQueue queue;                // waiting jobs
  std::vector<std::string> workers;  // peer keys in registration order
  int64_t in_flight = 0;             // jobs dispatched and not finished
  double service_ms = 0;             // moving average of dispatch-to-FINAL time, 0 = no sample yet
  schema::ModelIdentity model;       // the model it serves (sha256, kind, outputs); empty: none yet
  bool model_pinned = false;         // set by mmi.rollout: kept when no worker serves it
  DrainRate drain;                   // measured pace of completions, for retry_after_ms
};

}  // namespace ecgq::broker
