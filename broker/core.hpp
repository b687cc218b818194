// BrokerCore: the Majordomo 0.2 broker with every protocol rule and no sockets and no clock.
// Events go in (a message a peer sent, time passing, sends the loop could not deliver, a stop
// request), each carrying the time it happened; actions come out (frames to send, peers to
// disconnect). The thin loop (broker.hpp) turns socket traffic into events and actions into
// sends; tests, the durable journal (replaying into it) and the capacity planner (on simulated
// time) drive the same core.
//
// Where the rules live, mdbroker.c style, one place each:
//   core.cpp          event routing, replies to clients, timers (tick) and shutdown
//   core_clients.cpp  client REQUESTs: validation, the one decode of a job, cache hits, bounds
//   core_workers.cpp  worker commands: READY, HEARTBEAT, PARTIAL, FINAL, DISCONNECT; lost
//                     workers and re-dispatch; liveness; keep_warm heartbeats
//   dispatch.cpp      the dispatch policy: which worker gets which job, when a queued job
//                     expires, the retry_after_ms estimate, which workers are kept warm
//   core_inflight.cpp in-flight limits (max_job_time, deadlines after dispatch), worker-side
//                     failures (retry elsewhere, max_worker_failures) and the dead-letter list
//   core_mmi.cpp      mmi.service, mmi.status, mmi.cancel
//   core_admission.cpp  one model per service: which workers are admitted, mmi.rollout and the
//                     draining of the workers it replaces
//   core_jobs.cpp     results by job id (mmi.job), idempotent submits, the durable journal's
//                     records (Persist actions), commits and replay (Committed, Restore events)
#pragma once

#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "broker/broker_metrics.hpp"
#include "broker/config.hpp"
#include "broker/journal_record.hpp"
#include "broker/result_cache.hpp"
#include "broker/state.hpp"
#include "protocol/extensions.hpp"
#include "protocol/protocol.hpp"

namespace ecgq::broker {

// ------------------------------------------------------------------------------------ actions

// Frames for one peer. `job` names the job they concern ("" for none), for logs.
struct Send {
  std::string peer;    // peer key: socket index byte + routing id
  mdp::Frames frames;  // the frames after the routing id
  std::string job;     // job id, for logs
};

// DISCONNECT to a worker (RFC 18): it must reconnect and send READY.
struct Disconnect {
  std::string peer;
};

// A change for the durable journal (only with `journal` set). Accept records are acknowledged to
// the producer (PARTIAL `accepted`) only once the loop reports them committed; Dispatch, Finish
// and Forget records follow the job's life and need no answer.
struct Persist {
  JournalRecord record;
};

// What the core asks the loop to do, in order.
using Action = std::variant<Send, Disconnect, Persist>;
// The actions of one event.
using Actions = std::vector<Action>;

// ------------------------------------------------------------------------------------- events

// A message a peer sent on a ROUTER socket: its peer key and the frames after the routing id.
// The core tells clients from workers by frame 0, as RFC 18 does. With CURVE on (setting
// curve_secret_cert), `key` is the sender's public key (Z85, its ZAP User-Id) and `roles` what
// the current allow-lists let that key do (0: removed since its handshake); the core refuses
// messages the roles do not allow (key_role.hpp).
struct Received {
  std::string peer;
  mdp::Frames frames;
  TimePoint now;
  std::string key;     // CURVE public key (Z85); "" without CURVE
  unsigned roles = 0;  // KeyRole bits of `key` in the current allow-lists
};

// Time passed; the loop ticks at least every 50 ms (see next_tick()).
struct Tick {
  TimePoint now;
};

// Sends the loop could not deliver (the peer is gone, or its queue is full). After one send to a
// peer fails, the loop attempts no more sends to it from the same batch and lists them here too.
struct Undelivered {
  std::vector<Send> sends;
  TimePoint now;
};

// SIGTERM or SIGINT: stop taking work; in-flight jobs get shutdown_grace to finish.
struct StopRequested {
  TimePoint now;
};

// A Dispatch record the journal finished writing: the job's seq and the attempt it records.
struct DispatchCommit {
  uint64_t seq = 0;
  int64_t attempts = 0;
};

// The journal finished transactions: the Accept records of these job seqs are durable (the
// producer is told `accepted`), or could not be written (the job is withdrawn:
// journal_unavailable); these Dispatch records were written (or failed: the job runs anyway),
// so their REQUESTs may leave.
struct Committed {
  std::vector<uint64_t> durable;
  std::vector<uint64_t> failed;
  std::vector<DispatchCommit> dispatched;
  std::string failure;  // why the failed ones failed, for their error
  TimePoint now;
};

// Start-up replay: every job the journal holds, in acceptance order. Queued and running jobs go
// back to their queues (running ones are dispatched again, attempt + 1); done jobs keep their
// results until they expire. `wall_now_unix_ms` maps the journal's wall-clock times to `now`.
struct Restore {
  std::vector<JournaledJob> jobs;
  std::vector<std::string> dead_letters;  // encoded ext::DeadLetter maps, oldest first
  int64_t wall_now_unix_ms = 0;
  TimePoint now;
};

// Everything that can happen to the broker.
using Event = std::variant<Received, Tick, Undelivered, StopRequested, Committed, Restore>;

// The journal's state as the loop last saw it (the core reads no files).
struct JournalUsage {
  int64_t bytes = 0;         // the file and its WAL
  bool healthy = true;       // the last transaction committed
  std::string problem;       // why not, when not healthy
  int64_t transactions = 0;  // committed since the journal opened
  int64_t records = 0;       // written since the journal opened
};

// What a worker's FINAL says about its job: its error code ("" for ok) and, for a worker-side
// failure (is_worker_fault, or a FINAL that is not a result of this job), why.
struct FinalVerdict {
  std::string code;
  std::string message;
  bool worker_fault = false;
  std::optional<schema::Timings> timings;  // an ok result's timings, for /metrics
  bool cold_start = false;                 // an ok result's cold_start
};

// The printable form of a peer key (socket index and hex routing id), for logs.
std::string peer_name(const std::string& key);

// Makes the id of a job whose producer chose none: the loop's draws 128 random bits (hex), so
// ids cannot be guessed; tests pass a deterministic one.
using JobIdSource = std::function<std::string()>;

// Who sent the message being handled: the peer key plus, with CURVE on, its public key and roles.
struct Sender {
  std::string peer;
  std::string key;     // "" without CURVE
  unsigned roles = 0;  // KeyRole bits
};

// The broker: single-threaded, deterministic given its events, not copyable.
class BrokerCore {
 public:
  // A broker started at `now` (uptime counts from it). `new_job_id` makes the ids it assigns.
  // `wall_now_unix_ms` is the wall clock at `now`, for the journal's times (0 without one).
  BrokerCore(BrokerConfig config, TimePoint now, JobIdSource new_job_id,
             int64_t wall_now_unix_ms = 0);
  BrokerCore(const BrokerCore&) = delete;
  BrokerCore& operator=(const BrokerCore&) = delete;

  // Applies one event, then runs the dispatch pass once over the services it changed; returns
  // what to send, in order. Never re-entered: the loop reports failed sends as a later event.
  Actions handle(Event event);
  // When the core next needs a Tick (heartbeats, expiry sweeps, worker liveness, shutdown).
  TimePoint next_tick() const;
  // True once shutdown has finished (every job answered, workers disconnected): the loop exits.
  bool stopped() const { return stopped_; }
  // The counters mmi.status reports.
  const ext::StatusCounters& counters() const { return counters_; }
  // Tells the core how the journal stands before it handles the next event.
  void set_journal_usage(JournalUsage usage) { journal_ = std::move(usage); }
  // The Prometheus exposition text of /metrics, as of the last event (core_metrics.cpp).
  std::string metrics_text() const;

 private:
  // --- events, replies, timers and shutdown (core.cpp)
  void on_received(Received& received);
  bool refuse_by_role(const Received& received, mdp::PeerKind kind);
  void on_tick();
  void on_undelivered(const std::vector<Send>& sends);
  void begin_shutdown();
  void finish_shutdown_when_done();
  void send(const std::string& peer, mdp::Frames frames, const std::string& job = {});
  void disconnect(const std::string& peer);
  void reply_client(const JobRecord& job, mdp::ClientCommand command, std::string body);
  void reply_error(const std::string& peer, const std::string& service, const std::string& id,
                   const Status& error);
  void finish_with_error(JobRecord& job, const std::string& code, const std::string& message,
                         const std::string& field = {});
  void send_progress(const JobRecord& job, const std::string& event, int64_t position,
                     const std::string& worker_id);
  Service* find_service(const std::string& name);
  Service& find_or_create_service(const std::string& name);
  void mark_changed(const Service& service);

  // --- clients (core_clients.cpp)
  void on_client(const std::string& peer, mdp::Frames& frames);
  void accept_job(const std::string& peer, mdp::ClientMessage msg);
  bool read_ecgq_job(JobRecord& job, std::string& meta);
  void set_wait_for_worker(JobRecord& job, int64_t wait_ms) const;
  // `service` is null when the job's service does not exist yet.
  bool refuse_when_full(JobRecord& job, const Service* service);
  std::string why_full(const JobRecord& job, const Service* service) const;
  // Why a service not known yet cannot be added, naming max_services ("" when it can); `who` is
  // what names it ("job", "worker").
  std::string why_no_new_service(const char* who) const;
  bool answer_from_cache(JobRecord& job, const Service& service, const std::string& meta);

  // --- workers (core_workers.cpp)
  void on_worker(const std::string& peer, const mdp::Frames& frames);
  void register_worker(const std::string& peer, const mdp::WorkerMessage& msg);
  Worker new_worker(const std::string& peer, const mdp::WorkerMessage& msg) const;
  int64_t capped_capacity(int64_t advertised) const;
  void retire_stale_registrations(const Worker& fresh);
  void apply_status(Worker& worker, const std::string& frame);
  void worker_partial(Worker& worker, const mdp::WorkerMessage& msg);
  void worker_final(Worker& worker, const mdp::WorkerMessage& msg);
  FinalVerdict read_result(const JobRecord& job, const mdp::Frames& body);
  void cache_result(const JobRecord& job, schema::Result result, size_t bytes);
  // Counts a worker's FINAL for /metrics: its outcome and the phases its result reports.
  void observe_final(const JobRecord& job, const FinalVerdict& verdict);
  std::optional<std::pair<std::string, std::string>> service_model(const Service& service) const;
  void delete_worker(const std::string& key, const std::string& reason, bool disconnect);
  void undo_dispatch(Worker& worker, const std::string& token);
  void requeue(std::shared_ptr<JobRecord> job, FailedAttempt failure);
  void expire_workers();
  void send_heartbeats();

  // --- dispatch policy (dispatch.cpp)
  void dispatch_changed();
  void dispatch(Service& service);
  Worker* pick_worker(Service& service, const JobRecord* job = nullptr);
  bool has_dispatchable_worker(const Service& service) const;
  void assign(Worker& worker, const std::shared_ptr<JobRecord>& job);
  const char* queued_expiry(const JobRecord& job, const Service& service) const;
  void expire(JobRecord& job, const char* code, const Service& service);
  void expire_queued();
  int64_t retry_after_ms(const Service& service) const;
  bool keeps_warm(const Service& service, size_t registration_index) const;

  // --- admission: one model per service, rollouts (core_admission.cpp)
  std::string admission_problem(const Service& service, const Worker& worker) const;
  void refuse_worker(const std::string& peer, const Worker& worker, const char* code,
                     const std::string& why);
  void adopt_model(Service& service, const Worker& worker);
  void forget_unserved_model(Service& service);
  bool admit_reported_model(const std::string& key, const schema::ModelIdentity& before);
  std::string rollout(const std::string& peer, const std::string& body);
  void retire_when_drained(const std::string& key);
  bool takes_jobs(const Worker& worker, const std::string& model_sha256) const;
  bool pin_unservable(const Service& service, const std::string& model_sha256) const;

  // --- results by id, idempotency and the journal (core_jobs.cpp)
  static std::string job_key(const std::string& submitter, const std::string& id);
  // The result-cache key of a job's content: scoped to its submitter unless
  // result_cache_scope is shared ("" stays "": not cached).
  std::string scoped_content_key(const std::string& submitter, std::string content_key) const;
  bool answer_known_id(JobRecord& job);
  bool refuse_or_journal(JobRecord& job);
  void queue_job(std::shared_ptr<JobRecord> job, Service& svc);
  std::shared_ptr<JobRecord> take_awaiting(uint64_t seq);
  void on_committed(const Committed& committed);
  void withdraw(JobRecord& job);
  void hold_request(const std::shared_ptr<JobRecord>& job, mdp::Frames request);
  void release_request(const DispatchCommit& commit);
  void unhold(JobRecord& job);
  void on_restore(const Restore& restore);
  void restore_job(const JournaledJob& journaled, int64_t wall_now_unix_ms);
  void persist(JournalRecord::Kind kind, const JobRecord& job, std::string result = {});
  void keep_result(JobRecord& job, const std::string& body, bool ok);
  void forget_results();
  // mmi.job: reports on jobs by id; with `watch`, live ones answer to `peer` from now on.
  std::string job_reply(const std::string& peer, const std::string& body);
  std::string find_job_key(const std::string& id) const;
  ext::JournalInfo journal_info() const;
  int64_t unix_ms(TimePoint t) const;

  // --- /metrics (core_metrics.cpp)
  void render_service_gauges(prometheus::TextWriter& out) const;
  void render_worker_gauges(prometheus::TextWriter& out) const;
  // --- in-flight limits, worker-side failures, dead letters (core_inflight.cpp)
  void expire_in_flight();
  void take_back(Worker& worker, const std::string& token);
  void count_worker_failure(Worker& worker, const FailedAttempt& failure);
  void dead_letter(const JobRecord& job, const std::string& code);
  void keep_dead_letter(ext::DeadLetter letter);

  // --- management interface (core_mmi.cpp)
  void on_mmi(const std::string& peer, const mdp::ClientMessage& msg);
  std::string status_body() const;
  std::string cancel(const std::string& peer, const std::string& body);
  bool may_cancel(const JobRecord& job, bool all) const;

  BrokerConfig config_;
  std::map<std::string, Service> services_;
  std::map<std::string, Worker> workers_;  // by peer key
  ext::StatusCounters counters_;
  BrokerMetrics metrics_;  // Prometheus counters and histograms (/metrics)
  ResultCache cache_;
  uint64_t next_seq_ = 1;
  uint64_t next_token_ = 1;  // one per dispatch, so replies to an earlier attempt are stale
  JobIdSource new_job_id_;   // ids of jobs whose producer chose none
  bool curve_ = false;       // CURVE on: messages carry keys and roles, jobs are scoped by key
  Sender sender_;            // who sent the message being handled
  TimePoint started_;
  TimePoint heartbeat_at_;
  TimePoint expire_at_;
  bool shutting_down_ = false;
  bool stopped_ = false;
  TimePoint shutdown_deadline_;

  // The event being handled: its time, the actions it produced, the services it changed (the
  // dispatch pass serves each once, at the end) and the jobs it queued (told their position
  // after that pass, when it left them waiting).
  TimePoint now_;
  Actions out_;
  std::vector<std::string> changed_;  // names, each once, in the order they changed
  std::vector<std::shared_ptr<JobRecord>> just_queued_;

  // Results by job id and the journal (core_jobs.cpp).
  struct StoredResult {
    std::string body;  // the FINAL body as the client got it
    bool ok = false;   // status ok (done) or an error (failed)
    int64_t attempts = 0;
    TimePoint expires;
    uint64_t seq = 0;  // journal seq when journaled, else 0
  };
  bool durable_ = false;        // `journal` is set
  int64_t wall_anchor_ms_ = 0;  // wall clock (unix ms) at started_
  JournalUsage journal_;
  int64_t awaiting_bytes_ = 0;  // bodies written to the journal, not yet committed
  std::string journal_full_;    // why the last new job got journal_full; "" once one is taken
  std::map<uint64_t, std::shared_ptr<JobRecord>> awaiting_durable_;  // by seq
  // Jobs whose REQUEST waits for its Dispatch record (JobRecord::held_request), by seq.
  std::map<uint64_t, std::shared_ptr<JobRecord>> held_dispatches_;
  std::map<std::string, std::weak_ptr<JobRecord>> live_;        // by job_key
  std::map<std::string, StoredResult> results_;                 // by job_key
  std::deque<std::pair<TimePoint, std::string>> result_order_;  // expiry order
  int64_t result_bytes_ = 0;

  // Jobs that exhausted max_attempts, newest last, at most dead_letter_max (core_inflight.cpp).
  std::deque<ext::DeadLetter> dead_letters_;
};

}  // namespace ecgq::broker
