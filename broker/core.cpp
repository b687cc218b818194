// BrokerCore: routing of events, replies to clients, timers and shutdown.
#include "broker/core.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdio>

#include "broker/key_role.hpp"
#include "common/text.hpp"
#include "protocol/curve.hpp"
#include "protocol/schema.hpp"

namespace ecgq::broker {

using mdp::ClientCommand;

std::string peer_name(const std::string& key) {
  std::string s = key.empty() ? "?" : std::to_string(static_cast<int>(key[0])) + ":";
  char hex[3];
  for (size_t i = 1; i < key.size(); ++i) {
    std::snprintf(hex, sizeof hex, "%02x", static_cast<unsigned char>(key[i]));
    s += hex;
  }
  return s;
}

BrokerCore::BrokerCore(BrokerConfig config, TimePoint now, JobIdSource new_job_id,
                       int64_t wall_now_unix_ms)
    : config_(std::move(config)),
      // The cache reads the time of the event being handled: it never reads a clock either.
      cache_(ResultCacheLimits{config_.result_cache_entries, config_.result_cache_bytes,
                               config_.result_cache_ttl},
             [this] { return now_; }),
      new_job_id_(std::move(new_job_id)),
      curve_(!config_.curve_secret_cert.empty()),
      started_(now),
      heartbeat_at_(now + config_.heartbeat_interval),
      expire_at_(now),
      now_(now),
      durable_(!config_.journal.empty()),
      wall_anchor_ms_(wall_now_unix_ms) {}

Actions BrokerCore::handle(Event event) {
  // The event is ours: a received body moves on into its job record instead of being copied.
  std::visit(
      [this](auto& e) {
        now_ = e.now;
        using T = std::decay_t<decltype(e)>;
        if constexpr (std::is_same_v<T, Received>) {
          on_received(e);
        } else if constexpr (std::is_same_v<T, Tick>) {
          on_tick();
        } else if constexpr (std::is_same_v<T, Undelivered>) {
          on_undelivered(e.sends);
        } else if constexpr (std::is_same_v<T, Committed>) {
          on_committed(e);
        } else if constexpr (std::is_same_v<T, Restore>) {
          on_restore(e);
        } else {
          begin_shutdown();
        }
      },
      event);
  dispatch_changed();
  Actions out;
  out.swap(out_);
  return out;
}

TimePoint BrokerCore::next_tick() const {
  TimePoint next = std::min(heartbeat_at_, expire_at_);
  for (const auto& [key, w] : workers_) next = std::min(next, w.expiry);
  if (shutting_down_) next = std::min(next, shutdown_deadline_);
  return next;
}

void BrokerCore::on_received(Received& received) {
  const std::string& peer = received.peer;
  mdp::Frames& frames = received.frames;
  auto kind = mdp::peer_kind(frames);
  if (!kind) {
    spdlog::warn("event=dropped peer={} reason=\"{}\"", peer_name(peer), kind.status().message());
    return;
  }
  if (refuse_by_role(received, *kind)) return;
  sender_ = curve_ ? Sender{peer, received.key, received.roles} : Sender{peer, "", 0};
  if (*kind == mdp::PeerKind::Client) {
    on_client(peer, frames);
  } else {
    on_worker(peer, frames);
  }
}

bool BrokerCore::refuse_by_role(const Received& received, mdp::PeerKind kind) {
  if (!curve_) return false;
  const bool worker = kind == mdp::PeerKind::Worker;
  const mdp::Frames& f = received.frames;
  const std::string service = !worker && f.size() >= 3 ? f[2] : std::string();
  const std::string why = role_refusal(received.roles, worker, service);
  if (why.empty()) return false;
  // Only the command and service are logged, never a body (no samples, no client metadata).
  const std::string command =
      f.size() >= 2 && f[1].size() == 1
          ? (worker ? mdp::command_name(static_cast<mdp::WorkerCommand>(f[1][0]))
                    : mdp::command_name(static_cast<ClientCommand>(f[1][0])))
          : "?";
  spdlog::warn("event=message_refused reason={} key={} roles={} peer={} command={} service={}", why,
               received.key.empty() ? "-" : curve::fingerprint(received.key),
               role_names(received.roles), peer_name(received.peer), command,
               loggable(service, 64));
  // A registered worker whose key left the worker list is dropped at once: its jobs go to others.
  if (workers_.count(received.peer) != 0)
    delete_worker(received.peer, "its key was refused (" + why + ")", true);
  return true;
}

void BrokerCore::on_tick() {
  expire_workers();
  if (now_ >= expire_at_) {
    expire_in_flight();
    expire_queued();
    cache_.purge_expired();
    forget_results();
    expire_at_ = now_ + std::chrono::milliseconds(20);
  }
  if (now_ >= heartbeat_at_) {
    send_heartbeats();
    heartbeat_at_ = now_ + config_.heartbeat_interval;
  }
  finish_shutdown_when_done();
}

void BrokerCore::on_undelivered(const std::vector<Send>& sends) {
  std::vector<std::string> lost;  // workers the sends were for, in order
  // In reverse: undone dispatches go back to the front of their queue in their original order.
  for (auto it = sends.rbegin(); it != sends.rend(); ++it) {
    auto w = workers_.find(it->peer);
    if (w == workers_.end()) {
      if (auto kind = mdp::peer_kind(it->frames); kind && *kind == mdp::PeerKind::Client)
        spdlog::info("event=client_gone job={} dropped={}", it->job.empty() ? "-" : it->job,
                     it->frames.size() > 1 && it->frames[1].size() == 1
                         ? mdp::command_name(static_cast<ClientCommand>(it->frames[1][0]))
                         : "?");
      continue;
    }
    // A REQUEST that never left counts as never dispatched: no attempt used, no re-dispatch.
    const auto& f = it->frames;
    if (f.size() >= 3 && f[1].size() == 1 &&
        f[1][0] == static_cast<char>(mdp::WorkerCommand::Request))
      undo_dispatch(w->second, f[2]);
    if (std::find(lost.begin(), lost.end(), it->peer) == lost.end()) lost.push_back(it->peer);
  }
  for (const auto& key : lost) delete_worker(key, "unreachable", false);
}

void BrokerCore::begin_shutdown() {
  if (shutting_down_) return;
  shutting_down_ = true;
  shutdown_deadline_ = now_ + config_.shutdown_grace;
  size_t queued = 0;
  for (auto& [name, svc] : services_) {
    // Journaled jobs stay queued in the journal and run after the restart.
    for (auto& job : svc.queue.remove_if([](const JobRecord& j) { return !j.journaled; })) {
      finish_with_error(*job, "shutting_down", "the broker is shutting down; the job was not run");
      ++queued;
    }
  }
  size_t in_flight = 0;
  for (const auto& [key, w] : workers_) in_flight += w.in_flight.size();
  spdlog::info("event=shutting_down queued_answered={} in_flight={} grace_ms={}", queued, in_flight,
               config_.shutdown_grace.count());
  finish_shutdown_when_done();
}

void BrokerCore::finish_shutdown_when_done() {
  if (!shutting_down_ || stopped_) return;
  const bool drained = std::all_of(workers_.begin(), workers_.end(),
                                   [](const auto& kv) { return kv.second.in_flight.empty(); });
  if (!drained && now_ < shutdown_deadline_) return;
  for (auto& [key, w] : workers_) {
    for (auto& [token, job] : w.in_flight)
      if (!job->finished)
        finish_with_error(
            *job, "shutting_down",
            "the broker shut down before the worker answered (shutdown_grace passed)");
    w.in_flight.clear();
    disconnect(key);
  }
  spdlog::info("event=stopped workers_disconnected={}", workers_.size());
  workers_.clear();
  stopped_ = true;
}

void BrokerCore::send(const std::string& peer, mdp::Frames frames, const std::string& job) {
  // A job restored from the journal has no client connection: its producer asks by id.
  if (peer.empty()) return;
  out_.push_back(Send{peer, std::move(frames), job});
}

void BrokerCore::disconnect(const std::string& peer) {
  out_.push_back(Disconnect{peer});
}

void BrokerCore::reply_client(const JobRecord& job, ClientCommand command, std::string body) {
  mdp::Frames body_frames;
  body_frames.push_back(std::move(body));
  send(job.client, mdp::client_frames(command, job.service, std::move(body_frames)), job.id);
}

void BrokerCore::reply_error(const std::string& peer, const std::string& service,
                             const std::string& id, const Status& error) {
  ++counters_.errors[error.code()];
  metrics_.job_finished(service, error.code());
  mdp::Frames body;
  body.push_back(schema::error_result(id, error.code(), error.message(), error.field()));
  send(peer, mdp::client_frames(ClientCommand::Final, service, std::move(body)), id);
}

void BrokerCore::finish_with_error(JobRecord& job, const std::string& code,
                                   const std::string& message, const std::string& field) {
  job.finished = true;
  ++counters_.errors[code];
  metrics_.job_finished(job.service, code);
  spdlog::info("event=failed job={} service={} code={} attempts={} reason=\"{}\"", job.id,
               job.service, code, job.attempts, loggable(message, 256));
  std::string body = schema::error_result(job.ecgq_body ? job.id : "", code, message, field,
                                          std::nullopt, job.attempts);
  keep_result(job, body, false);
  reply_client(job, ClientCommand::Final, std::move(body));
}

void BrokerCore::send_progress(const JobRecord& job, const std::string& event, int64_t position,
                               const std::string& worker_id) {
  schema::Progress p;
  p.id = job.id;
  p.event = event;
  p.position = position;
  p.worker_id = worker_id;
  reply_client(job, ClientCommand::Partial, schema::encode_progress(p));
}

Service* BrokerCore::find_service(const std::string& name) {
  auto it = services_.find(name);
  return it == services_.end() ? nullptr : &it->second;
}

Service& BrokerCore::find_or_create_service(const std::string& name) {
  if (Service* s = find_service(name)) return *s;
  Service& s = services_[name];
  s.name = name;
  s.ecgq_jobs = config_.is_ecgq(name);
  return s;
}

void BrokerCore::mark_changed(const Service& service) {
  // A handful of services change per event: a linear check beats a set's allocations.
  if (std::find(changed_.begin(), changed_.end(), service.name) == changed_.end())
    changed_.push_back(service.name);
}

}  // namespace ecgq::broker
