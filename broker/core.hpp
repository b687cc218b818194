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
//   core_mmi.cpp      mmi.service, mmi.status, mmi.cancel
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "broker/config.hpp"
#include "broker/result_cache.hpp"
#include "broker/state.hpp"
#include "protocol/extensions.hpp"
#include "protocol/protocol.hpp"

namespace ecgq::broker {

// ------------------------------------------------------------------------------------ actions

// Frames for one peer. `job` names the job they concern ("" for none), for logs.
struct Send {
  std::string peer;     // peer key: socket index byte + routing id
  mdp::Frames frames;   // the frames after the routing id
  std::string job;      // job id, for logs
};

// DISCONNECT to a worker (RFC 18): it must reconnect and send READY.
struct Disconnect {
  std::string peer;
};

// What the core asks the loop to do, in order. The durable journal (issue 11) adds its records
// here as one more alternative, `Persist{JournalRecord}` (broker/journal.hpp: Accept where
// accept_job queues a job, Dispatch in assign(), Finish where a FINAL is forwarded or the broker
// answers a job itself), emitted before the Send that acknowledges what it records; the loop
// hands them to the journal and the rest to the sockets. Replay feeds the loaded jobs back in
// as one more Event alternative.
using Action = std::variant<Send, Disconnect>;
// The actions of one event.
using Actions = std::vector<Action>;

// ------------------------------------------------------------------------------------- events

// A message a peer sent on a ROUTER socket: its peer key and the frames after the routing id.
// The core tells clients from workers by frame 0, as RFC 18 does.
struct Received {
  std::string peer;
  mdp::Frames frames;
  TimePoint now;
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

// Everything that can happen to the broker.
using Event = std::variant<Received, Tick, Undelivered, StopRequested>;

// The printable form of a peer key (socket index and hex routing id), for logs.
std::string peer_name(const std::string& key);

// The broker: single-threaded, deterministic given its events, not copyable.
class BrokerCore {
 public:
  // A broker started at `now` (uptime counts from it). `id_prefix` makes the ids it assigns
  // unique across broker runs (the loop derives it from the wall clock).
  BrokerCore(BrokerConfig config, TimePoint now, std::string id_prefix);
  BrokerCore(const BrokerCore&) = delete;
  BrokerCore& operator=(const BrokerCore&) = delete;

  // Applies one event, then runs the dispatch pass once over the services it changed; returns
  // what to send, in order. Never re-entered: the loop reports failed sends as a later event.
  Actions handle(const Event& event);
  // When the core next needs a Tick (heartbeats, expiry sweeps, worker liveness, shutdown).
  TimePoint next_tick() const;
  // True once shutdown has finished (every job answered, workers disconnected): the loop exits.
  bool stopped() const { return stopped_; }
  // The counters mmi.status reports.
  const ext::StatusCounters& counters() const { return counters_; }

 private:
  // --- events, replies, timers and shutdown (core.cpp)
  void on_received(const std::string& peer, const mdp::Frames& frames);
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
  void on_client(const std::string& peer, const mdp::Frames& frames);
  void accept_job(const std::string& peer, mdp::ClientMessage msg);
  bool read_ecgq_job(JobRecord& job, std::string& meta);
  bool refuse_when_full(JobRecord& job, const Service& service);
  bool answer_from_cache(JobRecord& job, const Service& service, const std::string& meta);

  // --- workers (core_workers.cpp)
  void on_worker(const std::string& peer, const mdp::Frames& frames);
  void register_worker(const std::string& peer, const mdp::WorkerMessage& msg);
  Worker new_worker(const std::string& peer, const mdp::WorkerMessage& msg) const;
  void retire_stale_registrations(const Worker& fresh);
  void apply_status(Worker& worker, const std::string& frame);
  void worker_partial(Worker& worker, const mdp::WorkerMessage& msg);
  void worker_final(Worker& worker, const mdp::WorkerMessage& msg);
  std::string read_result(const JobRecord& job, const mdp::Frames& body);
  std::optional<std::pair<std::string, std::string>> service_model(const Service& service) const;
  void delete_worker(const std::string& key, const std::string& reason, bool disconnect);
  void undo_dispatch(Worker& worker, const std::string& token);
  void requeue(std::shared_ptr<JobRecord> job, const std::string& reason);
  void expire_workers();
  void send_heartbeats();

  // --- dispatch policy (dispatch.cpp)
  void dispatch_changed();
  void dispatch(Service& service);
  Worker* pick_worker(Service& service);
  void assign(Worker& worker, const std::shared_ptr<JobRecord>& job);
  const char* queued_expiry(const JobRecord& job, const Service& service) const;
  void expire(JobRecord& job, const char* code, const Service& service);
  void expire_queued();
  int64_t retry_after_ms(const Service& service) const;
  bool keeps_warm(const Service& service, size_t registration_index) const;

  // --- management interface (core_mmi.cpp)
  void on_mmi(const std::string& peer, const mdp::ClientMessage& msg);
  std::string status_body() const;
  std::string cancel(const std::string& peer, const std::string& body);

  BrokerConfig config_;
  std::map<std::string, Service> services_;
  std::map<std::string, Worker> workers_;  // by peer key
  ext::StatusCounters counters_;
  ResultCache cache_;
  uint64_t next_seq_ = 1;
  uint64_t next_token_ = 1;  // one per dispatch, so replies to an earlier attempt are stale
  std::string id_prefix_;    // makes assigned ids unique across broker restarts
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
};

}  // namespace ecgq::broker
