// The Majordomo 0.2 broker: one poll loop over one or two ROUTER sockets, every protocol rule in
// a handler of its own. Clients and workers are told apart by frame 0 (MDPC02 / MDPW02).
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <zmq.hpp>

#include "broker/config.hpp"
#include "broker/result_cache.hpp"
#include "broker/state.hpp"
#include "protocol/protocol.hpp"
#include "common/status.hpp"

namespace ecgq::broker {

// Counters reported by mmi.status.
struct Counters {
  uint64_t received = 0;                   // client REQUESTs for real services
  uint64_t dispatched = 0;                 // REQUESTs sent to workers (re-dispatches included)
  uint64_t completed = 0;                  // worker FINALs forwarded
  uint64_t redispatched = 0;               // jobs re-queued after a lost worker
  uint64_t dropped_duplicates = 0;         // worker PARTIAL/FINALs for jobs not in flight on it
  std::map<std::string, uint64_t> errors;  // error FINALs by code (broker's and workers')
};

// The broker; single-threaded, not copyable.
class Broker {
 public:
  // Creates the sockets; call bind() next.
  explicit Broker(BrokerConfig config);
  Broker(const Broker&) = delete;
  Broker& operator=(const Broker&) = delete;

  // Binds the endpoints; an error names the endpoint.
  Status bind();
  // Serves until `stop_requested` returns true, then drains and returns the exit code (0).
  int run(const std::function<bool()>& stop_requested);

 private:
  // --- I/O (broker.cpp)
  bool send(const std::string& peer, mdp::Frames frames, const std::string& what);
  void receive(int socket_index);
  void handle_client(const std::string& peer, const mdp::Frames& frames);
  void reply_client(const Job& job, mdp::ClientCommand command, std::string body);
  void reply_error(const std::string& peer, const std::string& service, const std::string& id,
                   const Status& error, std::optional<int64_t> retry_after_ms = std::nullopt);
  void finish_with_error(Job& job, const std::string& code, const std::string& message,
                         const std::string& field = {});
  void accept_job(const std::string& peer, mdp::ClientMessage msg);
  void send_progress(const Job& job, const std::string& event, int64_t position,
                     const std::string& worker_id);
  bool answer_from_cache(Job& job, const Service& service);
  void begin_shutdown();
  bool drained() const;
  void finish_shutdown();

  // --- workers, dispatch and timers (broker_workers.cpp)
  void handle_worker(const std::string& peer, const mdp::Frames& frames);
  void register_worker(const std::string& peer, const mdp::WorkerMessage& msg);
  void apply_status(Worker& w, const std::string& frame);
  void worker_final(Worker& w, const mdp::WorkerMessage& msg);
  void cache_result(const Job& job, const std::string& body);
  // The (sha256, precision) every worker of `service` that knows its model agrees on, if any.
  std::optional<std::pair<std::string, std::string>> service_model(const Service& service) const;
  void delete_worker(std::string key, const std::string& reason, bool disconnect);
  void requeue(std::shared_ptr<Job> job, const std::string& reason);
  void dispatch(Service& service);
  Worker* pick_worker(Service& service);
  bool send_to_worker(Worker& w, const std::shared_ptr<Job>& job);
  void on_timer();
  void expire_queued();
  void send_heartbeats();
  int64_t retry_after_ms(const Service& service) const;
  Service& service(const std::string& name);

  // --- management interface (broker_mmi.cpp)
  void handle_mmi(const std::string& peer, const mdp::ClientMessage& msg);
  std::string status_body() const;
  std::string cancel(const std::string& peer, const std::string& body);

  BrokerConfig config_;
  zmq::context_t context_;
  zmq::socket_t sockets_[2];  // [0] bind (clients and workers), [1] worker_bind (optional)
  std::map<std::string, Service> services_;
  std::map<std::string, Worker> workers_;  // by peer key
  Counters counters_;
  ResultCache cache_;
  uint64_t next_seq_ = 1;
  uint64_t next_token_ = 1;  // one per dispatch, so replies to an earlier attempt are stale
  std::string id_prefix_;    // makes assigned ids unique across broker restarts
  TimePoint started_;
  TimePoint heartbeat_at_;
  TimePoint expire_at_;
  bool shutting_down_ = false;
  TimePoint shutdown_deadline_;
};

// The printable form of a peer key (socket index and hex routing id), for logs.
std::string peer_name(const std::string& key);

}  // namespace ecgq::broker
