// The ecgq extension bodies of Majordomo, typed: READY metadata (docs/protocol.md section 4.4),
// the worker's HEARTBEAT status (4.5), the broker's HEARTBEAT frame (4.6) and the mmi.* request
// and reply bodies (section 5). Each body is a struct with one encoder and one decoder; the
// broker, the worker and the CLI use these and nothing else, so a field is named in one place.
//
// Decoders take the size-limited parse of schema_msgpack.hpp (the one path every msgpack body
// goes through). Peer-to-peer bodies are read leniently, as the protocol promises: a field of
// the wrong type or out of range is skipped, not fatal, and reported in `skipped` with a Status
// naming the field, so an older or newer peer still interoperates. Only a body that is not one
// msgpack map fails as a whole. Absent keys are nullopt (or the documented default).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/status.hpp"
#include "protocol/schema.hpp"
#include "protocol/worker_state.hpp"

namespace ecgq::ext {

// Fields a lenient decoder skipped because their value was unusable; each Status names its
// field (bad_request, "capacity must be >= 1, got 0").
using Skipped = std::vector<Status>;

// READY metadata, frame 3 of READY (section 4.4). Every key is optional.
struct ReadyMetadata {
  std::optional<int64_t> capacity;             // jobs it takes at once, >= 1
  std::optional<WorkerState> state;            // its model's state now
  std::optional<std::string> worker_id;        // stable name for logs and mmi.status, non-empty
  std::optional<schema::ModelIdentity> model;  // empty strings: not known yet
  std::optional<int64_t> pid;                  // with host and worker_id: recognises a reconnect
  std::optional<std::string> host;             // the worker's host name
  std::optional<std::string> reason;           // state failed: why the model cannot be loaded
};
// Encodes READY metadata: {v, capacity?, state?, worker_id?, model?, pid?, host?, reason?}.
std::string encode_ready(const ReadyMetadata& metadata);
// Decodes READY metadata; fails only when the frame is not one msgpack map.
Expected<ReadyMetadata> decode_ready(const std::string& frame, Skipped* skipped = nullptr);

// A worker's HEARTBEAT status, frame 2 of HEARTBEAT W->B (section 4.5). Every key is optional.
struct WorkerStatus {
  std::optional<WorkerState> state;            // its model's state now
  std::optional<int64_t> rss_bytes;            // resident memory, -1 = unknown
  std::optional<int64_t> jobs_done;            // results sent since start (informational)
  std::optional<int64_t> inflight;             // jobs it holds now (informational)
  std::optional<int64_t> capacity;             // jobs it takes at once, >= 1
  std::optional<schema::ModelIdentity> model;  // the sha256 is known only after a load
  std::optional<std::string> reason;           // state failed: why the model cannot be loaded
};
// Encodes a worker status: {state?, rss_bytes?, jobs_done?, inflight?, capacity?, model?,
// reason?}.
std::string encode_worker_status(const WorkerStatus& status);
// Decodes a worker status; fails only when the frame is not one msgpack map.
Expected<WorkerStatus> decode_worker_status(const std::string& frame, Skipped* skipped = nullptr);

// Copies the non-empty fields of `reported` over `known`: a worker that has not loaded its
// checkpoint yet reports empty strings, which must not erase what it said before.
void update_model(schema::ModelIdentity& known, const schema::ModelIdentity& reported);

// The broker's HEARTBEAT frame to workers that sent READY metadata (section 4.6).
struct BrokerHeartbeat {
  std::optional<bool> keep_warm;  // true: do not sleep after idle_timeout
};
// Encodes {keep_warm?}.
std::string encode_broker_heartbeat(const BrokerHeartbeat& heartbeat);
// Decodes the broker's heartbeat frame; fails only when it is not one msgpack map.
Expected<BrokerHeartbeat> decode_broker_heartbeat(const std::string& frame,
                                                  Skipped* skipped = nullptr);

// mmi.service replies (RFC 8): plain text, not msgpack.
inline constexpr const char* kServiceFound = "200";           // a live worker serves it
inline constexpr const char* kServiceNotFound = "404";        // no live worker
inline constexpr const char* kServiceNotImplemented = "501";  // an mmi.* service we lack

// An mmi.cancel request body: the calling client's queued jobs to cancel.
struct CancelRequest {
  bool all = false;              // every queued job of the client
  std::vector<std::string> ids;  // these ids (when not all)
};
// Encodes {all: true} when `all`, else {ids: [...]}.
std::string encode_cancel_request(const CancelRequest& request);
// Decodes strictly: a map with `all: bool` and/or `ids: [str]`, asking for something. Errors are
// bad_request naming the field (`all`, `ids`; "" when the body is not a map).
Expected<CancelRequest> decode_cancel_request(const std::string& body);

// An mmi.cancel reply body.
struct CancelReply {
  int64_t cancelled = 0;  // queued jobs removed (each got a FINAL `cancelled` first)
  int64_t in_flight = 0;  // already running, not recalled
  int64_t unknown = 0;    // ids the broker does not hold for this client
};
// Encodes {v, cancelled, in_flight, unknown}.
std::string encode_cancel_reply(const CancelReply& reply);
// Decodes a reply; an error result (the broker refused the request) is returned as its Status.
Expected<CancelReply> decode_cancel_reply(const std::string& body);

// An mmi.job request body: the jobs to report on (results by job id).
struct JobQuery {
  std::vector<std::string> ids;  // 1 to kMaxJobQueryIds ids
  // True: the asker takes over the queued and running jobs among `ids` (a producer that
  // reconnected after a broker restart): their PARTIALs and FINAL go to its connection.
  bool watch = false;
};
// Ids one mmi.job request may ask for.
inline constexpr size_t kMaxJobQueryIds = 1000;
// Encodes {ids: [...], watch?: true}.
std::string encode_job_query(const JobQuery& query);
// Decodes strictly: a map with `ids: [str]`, 1 to kMaxJobQueryIds of them, and an optional
// boolean `watch`; errors are bad_request naming the field.
Expected<JobQuery> decode_job_query(const std::string& body);

// What the broker knows of one job.
struct JobInfo {
  std::string id;
  std::string state;      // queued, running, done (ok), failed (an error result) or unknown
  int64_t position = -1;  // queued: 0 = next; -1 otherwise
  int64_t attempts = 0;   // dispatches so far
  std::string result;     // done/failed: the FINAL body (a msgpack result map); "" otherwise
};
// An mmi.job reply body: one entry per asked id, in the order asked.
struct JobQueryReply {
  std::vector<JobInfo> jobs;
};
// Encodes {v, jobs: [{id, state, position?, attempts, result?}]} (result as the result map).
std::string encode_job_reply(const JobQueryReply& reply);
// Decodes a reply; an error result (the broker refused the request) is returned as its Status.
Expected<JobQueryReply> decode_job_reply(const std::string& body);

// One worker in mmi.status.
struct WorkerInfo {
  std::string id;                 // worker_id
  std::string state;              // a WorkerState name, or "busy" (warm with jobs in flight)
  std::string reason;             // state failed: why its model cannot be loaded
  bool draining = false;          // replaced by a rollout: finishes its jobs, gets no new ones
  int64_t capacity = 1;           // jobs it takes at once
  int64_t in_flight = 0;          // jobs it holds now
  int64_t jobs_done = 0;          // FINALs the broker received from it
  int64_t last_heartbeat_ms = 0;  // age of its last message
  int64_t rss_bytes = -1;         // from its heartbeat status, -1 = unknown
  bool keep_warm = false;         // what the broker last told it
  schema::ModelIdentity model;    // what it reported
  int64_t pid = 0;                // from READY metadata
  std::string host;               // from READY metadata
  int64_t failures_in_row = 0;    // worker-side failures since its last good answer
  std::string out_of_dispatch;    // why it gets no jobs (until a FINAL or READY); "" = it does
};

// One service in mmi.status.
struct ServiceInfo {
  bool ecgq = false;            // its bodies are ecgq jobs
  int64_t queued = 0;           // jobs waiting
  int64_t in_flight = 0;        // jobs dispatched and not finished
  int64_t clients_waiting = 0;  // clients with queued jobs
  double service_ms = 0;        // moving average dispatch->FINAL, 0 = no sample yet
  schema::ModelIdentity model;  // the identity it serves (sha256, kind, outputs); empty: none yet
  std::vector<WorkerInfo> workers;
};

// The broker's counters in mmi.status.
struct StatusCounters {
  int64_t received = 0;                   // client REQUESTs for real services
  int64_t dispatched = 0;                 // REQUESTs sent to workers (re-dispatches included)
  int64_t completed = 0;                  // worker FINALs forwarded
  int64_t redispatched = 0;               // jobs re-queued after a lost worker
  int64_t dropped_duplicates = 0;         // worker PARTIAL/FINALs for jobs not in flight on it
  std::map<std::string, int64_t> errors;  // error FINALs by code (broker's and workers')
};

// The result cache in mmi.status.
struct CacheInfo {
  bool enabled = false;  // false when result_cache_entries is 0
  int64_t entries = 0;   // held now
  int64_t bytes = 0;     // held now
  int64_t max_entries = 0;
  int64_t max_bytes = 0;
  int64_t ttl_ms = 0;
  int64_t hits = 0;
  int64_t misses = 0;
  double hit_rate = 0;  // hits / (hits + misses), 0 before any lookup
  int64_t insertions = 0;
  int64_t evictions = 0;
  int64_t expirations = 0;
};

// The durable journal in mmi.status (`enabled` false and the rest empty without one).
struct JournalInfo {
  bool enabled = false;
  std::string path;          // the SQLite file
  std::string sync;          // journal_sync: full or normal
  int64_t bytes = 0;         // the file and its WAL on disk
  int64_t max_bytes = 0;     // journal_max_bytes
  int64_t jobs = 0;          // jobs it holds: queued, running and finished ones with a result
  std::string state;         // ok, full (the last new job got journal_full) or unavailable
  std::string last_error;    // why it is full or unavailable ("" when ok)
  int64_t transactions = 0;  // committed since the broker started
  int64_t records = 0;       // records written since the broker started
};

// One failed attempt of a dead-lettered job.
struct DeadAttempt {
  std::string worker;   // worker_id of the worker that had it
  std::string code;     // error code (worker_lost, model_error, bad_result, ...)
  std::string message;  // why
};

// A job that exhausted max_attempts, in mmi.status's dead_letters.
struct DeadLetter {
  std::string id;                     // job id
  std::string service;                // its service
  int64_t failed_unix_ms = 0;         // when it was given up
  std::string code;                   // the error its client got
  std::vector<DeadAttempt> attempts;  // each attempt's worker and error, oldest first
};

// The mmi.status reply body (section 5).
struct BrokerStatus {
  int64_t uptime_ms = 0;
  bool shutting_down = false;
  std::map<std::string, ServiceInfo> services;  // by name
  StatusCounters counters;
  CacheInfo result_cache;
  JournalInfo journal;
  std::vector<DeadLetter> dead_letters;  // newest last, at most dead_letter_max
};
// One dead letter as a msgpack map (mmi.status's element; the journal keeps them so).
std::string encode_dead_letter(const DeadLetter& letter);
Expected<DeadLetter> decode_dead_letter(const std::string& body);
// Encodes the mmi.status body, keys in the documented order.
std::string encode_status(const BrokerStatus& status);
// Decodes an mmi.status body; fails only when it is not one msgpack map.
Expected<BrokerStatus> decode_status(const std::string& body, Skipped* skipped = nullptr);

}  // namespace ecgq::ext
