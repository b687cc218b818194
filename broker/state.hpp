// The broker's state in three plain structs: a job, a worker and a service. The Broker class owns
// them and applies every protocol rule; these hold data only.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "broker/service_queue.hpp"
#include "protocol/protocol.hpp"
#include "protocol/schema.hpp"

namespace ecgq::broker {

// The broker's clock: monotonic, so deadlines survive wall-clock jumps.
using Clock = std::chrono::steady_clock;
using TimePoint = Clock::time_point;

// One client request from receipt until its FINAL.
struct Job {
  uint64_t seq = 0;         // broker sequence number, unique per broker run
  std::string token;        // this dispatch's 8-byte token: the "client address" workers echo
  std::string id;           // ecgq job id (client's or assigned), "#seq" for other services
  std::string assigned_id;  // the id the broker assigned (empty when the client chose one)
  std::string client;       // peer key of the client (socket byte + routing id)
  std::string service;      // service name as the client wrote it
  mdp::Frames body;         // the request body exactly as received
  bool ecgq = false;        // body is an ecgq msgpack job
  std::string content_key;  // schema::job_content_key of the body; "" when not cacheable
  int64_t attempts = 0;     // dispatches so far
  TimePoint received;       // broker receipt
  std::optional<TimePoint> deadline;  // receipt + deadline_ms, when the job has one
  TimePoint dispatched_at;            // last dispatch, for service-time estimates
  std::string worker;                 // peer key of the worker while in flight
  bool finished = false;  // the broker sent its own FINAL (an error): nothing may follow it
};

// A registered worker.
struct Worker {
  std::string key;             // socket byte + routing id
  std::string service;         // the service it registered for
  std::string worker_id;       // from READY metadata, else the hex routing id
  bool extended = false;       // sent READY metadata, so it understands extension frames
  int64_t capacity = 1;        // jobs it accepts at once
  std::string state = "warm";  // cold, warming, warm, asleep or waking (as last reported)
  std::map<std::string, std::shared_ptr<Job>> in_flight;  // by token
  TimePoint expiry;             // lost when no traffic arrives before this
  TimePoint last_seen;          // last message of any kind
  uint64_t jobs_done = 0;       // FINALs received
  int64_t rss_bytes = -1;       // from heartbeat status, -1 when unknown
  schema::ModelIdentity model;  // from READY metadata
  int64_t pid = 0;              // from READY metadata
  std::string host;             // from READY metadata
  bool keep_warm = false;       // what the broker last told it

  // Jobs it can still take.
  int64_t free_slots() const { return capacity - static_cast<int64_t>(in_flight.size()); }
  // State for mmi.status: busy is warm with jobs in flight.
  std::string shown_state() const { return state == "warm" && !in_flight.empty() ? "busy" : state; }
};

// A service: its queue, its workers and a service-time estimate for retry_after_ms.
struct Service {
  std::string name;                  // as clients and workers spell it
  bool ecgq = false;                 // bodies are ecgq jobs
  ServiceQueue queue;                // waiting jobs
  std::vector<std::string> workers;  // peer keys in registration order
  int64_t in_flight = 0;             // jobs dispatched and not finished
  double service_ms = 0;             // moving average of dispatch-to-FINAL time, 0 = no sample yet
};

}  // namespace ecgq::broker
