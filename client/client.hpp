// The asynchronous ecgq client: many jobs in flight on one MDP/0.2 DEALER, replies matched by the
// job id in the msgpack body, progress events, per-job timeouts, a broker that goes silent
// detected, a broker restart ridden through (jobs taken over by id, the never-accepted ones sent
// again), and the MMI calls (mmi.status, mmi.service, mmi.cancel).
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>
#include <zmq.hpp>

#include "client/dealer.hpp"
#include "common/duration.hpp"
#include "common/status.hpp"
#include "protocol/curve.hpp"
#include "protocol/extensions.hpp"
#include "protocol/protocol.hpp"
#include "protocol/schema.hpp"

namespace ecgq::client {

// How a client talks to its broker.
struct ClientOptions {
  std::string broker = "tcp://127.0.0.1:5555";  // endpoint of ecgq-broker
  std::string service = "ecg-fm";               // service jobs go to
  Millis timeout{60000};              // broker silence tolerated while jobs are outstanding
  std::optional<Millis> job_timeout;  // per job, counted from its submission
  std::string id_prefix;              // job ids are "<prefix>-<seq>"; "" = a random 128-bit prefix
  int64_t max_message_bytes = int64_t{128} << 20;  // bodies above fail locally
  // CURVE keys (curve::load_client_keys of curve_cert and broker_key); nullopt = plaintext.
  std::optional<curve::ClientKeys> curve;
  // Jobs wait this long for a worker of their service (wait_for_worker_ms, capped by the
  // broker's service_wait); without it a service with no worker that the broker does not serve
  // fails before the first submit, naming the services the broker knows.
  std::optional<Millis> wait_for_worker;
  bool check_service = true;  // make that check (mmi.status, at most 2 s) before the first submit
};

// Something that happened to a submitted job.
struct JobEvent {
  std::string id;                            // the job id
  std::optional<schema::Progress> progress;  // a PARTIAL (queued, waking, running)
  std::optional<schema::Result> result;      // the FINAL; the job is finished
};

// The body of an mmi.cancel reply (cancelled, in_flight, unknown).
using CancelReply = ext::CancelReply;

// One producer connection; not thread-safe (one thread drives it), not copyable.
class Client {
 public:
  // Connects (without waiting for the broker: ZeroMQ connects in the background).
  explicit Client(ClientOptions options);
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // A fresh job id, unique across clients: "<random 128-bit prefix>-<seq>". The broker treats a
  // repeated id from the same submitter as the same job, so ids must never collide.
  std::string next_id();
  // Sends a job to the service, setting its id first when empty; returns the id. Fails locally
  // with message_too_large, or broker_unreachable when the socket cannot queue for `timeout`.
  Expected<std::string> submit(schema::Job job);
  // Sends an already encoded body under `id` (replays, tests); `service` "" = the default.
  Status submit_body(const std::string& id, const std::string& body,
                     const std::string& service = {});
  // Jobs sent and not finished.
  size_t outstanding() const { return outstanding_.size(); }

  // The next event, waiting up to `wait`; nullopt when nothing happened. After a reconnection
  // to the broker (a restart), jobs the broker had accepted (PARTIAL `accepted`) are taken over
  // by id through mmi.job (finished ones answered from the stored result), and the others are
  // sent again under the same id (the broker runs a repeated id once). Fails with
  // broker_unreachable ("no reply from broker ... for 30s") when the broker stayed silent for
  // `timeout` while jobs were outstanding; those jobs are then forgotten. A job past its
  // job_timeout finishes with a local error result (code `timeout`).
  Expected<std::optional<JobEvent>> poll(Millis wait);

  // Calls an MMI service and waits up to `timeout` for its FINAL body frames; job events that
  // arrive meanwhile are kept for poll().
  Expected<mdp::Frames> mmi(const std::string& service, const mdp::Frames& body, Millis timeout);
  // mmi.service: true when the service has a live worker ("200"), false for "404".
  Expected<bool> service_available(const std::string& service, Millis timeout);
  // mmi.status: the raw msgpack status body (docs/protocol.md section 5).
  Expected<std::string> status(Millis timeout);
  // mmi.cancel for this client's queued jobs: the given ids, or all when `ids` is empty.
  Expected<CancelReply> cancel(const std::vector<std::string>& ids, Millis timeout);

  // The options in use (the random id prefix filled in).
  const ClientOptions& options() const { return options_; }
  // FINALs dropped because their job was not outstanding (answered already, or never sent here):
  // the duplicates this client kept from its caller.
  uint64_t unmatched_finals() const { return unmatched_finals_; }

 private:
  using Clock = std::chrono::steady_clock;
  // A job sent and not finished.
  struct Pending {
    Clock::time_point submitted;
    std::string service;
    std::string body;       // kept to send it again if the broker restarts
    bool accepted = false;  // the broker said the job is durable (PARTIAL accepted)
  };

  Status send(const mdp::Frames& frames);
  // Waits up to `wait` for one message and handles it; resynchronises after a reconnection.
  void receive_one(Millis wait);
  void handle(mdp::Frames frames);
  // After a reconnection: takes the accepted jobs over (mmi.job with watch), resends the rest.
  void resync();
  // Sends a pending job's body again (a reconnection, or the broker no longer knows it).
  void resend(const std::string& id, const Pending& job, const char* reason);
  // Handles an mmi.job reply to resync(): finished jobs become events, unknown ones are resent.
  void take_over(const mdp::Frames& body);
  std::optional<JobEvent> expire_jobs();
  Status silence_error() const;
  Status check_service(const std::string& service);
  void probe_broker();

  ClientOptions options_;
  zmq::context_t context_;
  std::unique_ptr<Dealer> dealer_;
  uint64_t seq_ = 0;
  std::map<std::string, Pending> outstanding_;                     // by job id
  std::deque<std::pair<Clock::time_point, std::string>> by_time_;  // for job_timeout
  std::deque<JobEvent> events_;                                    // received, not yet handed out
  std::deque<std::pair<std::string, mdp::Frames>> mmi_replies_;    // service -> body
  Clock::time_point last_traffic_;
  uint64_t unmatched_finals_ = 0;
  uint64_t handshakes_seen_ = 0;                     // of dealer_->handshakes()
  std::deque<std::vector<std::string>> take_overs_;  // ids of mmi.job requests in flight
  std::map<std::string, Status> service_checks_;  // by service: the check's verdict
  bool probing_ = false;  // an mmi.service probe of a silent broker awaits its answer
};

}  // namespace ecgq::client
