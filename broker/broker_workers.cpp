// Worker side of the broker: registration, replies, liveness, re-dispatch and dispatch policy.
#include <spdlog/spdlog.h>

#include <algorithm>
#include <msgpack.hpp>

#include "broker/broker.hpp"
#include "broker/msgpack_fields.hpp"
#include "protocol/schema.hpp"

namespace ecgq::broker {

namespace {

using mdp::WorkerCommand;

double ms_between(TimePoint a, TimePoint b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

// Dispatch preference: warm first, then workers that will be warm soon, then sleepers to wake.
int state_rank(const std::string& state) {
  if (state == "warm") return 0;
  if (state == "warming" || state == "waking") return 1;
  return 2;  // asleep, cold or anything unknown: dispatching wakes it
}

bool known_state(const std::string& s) {
  return s == "cold" || s == "warming" || s == "warm" || s == "asleep" || s == "waking";
}

// Reads {kind, name, sha256, precision}; absent or empty keys keep what was known.
void read_model(const msgpack::object& v, schema::ModelIdentity& model) {
  if (v.type != msgpack::type::MAP) return;
  for (uint32_t i = 0; i < v.via.map.size; ++i) {
    const auto& kv = v.via.map.ptr[i];
    if (kv.key.type != msgpack::type::STR || kv.val.type != msgpack::type::STR ||
        kv.val.via.str.size == 0)
      continue;
    const std::string k = str(kv.key);
    if (k == "kind")
      model.kind = str(kv.val);
    else if (k == "name")
      model.name = str(kv.val);
    else if (k == "sha256")
      model.sha256 = str(kv.val);
    else if (k == "precision")
      model.precision = str(kv.val);
  }
}

std::string token_of(uint64_t n) {
  std::string t(8, '\0');
  for (int i = 7; i >= 0; --i, n >>= 8) t[i] = static_cast<char>(n & 0xff);
  return t;
}

}  // namespace

void Broker::handle_worker(const std::string& peer, const mdp::Frames& frames) {
  auto msg = mdp::parse_worker(frames);
  auto it = workers_.find(peer);
  if (!msg) {
    // RFC 18: invalid messages are dropped.
    spdlog::warn("event=bad_worker_message peer={} reason=\"{}\"", peer_name(peer),
                 msg.status().message());
    return;
  }
  if (msg->command == WorkerCommand::Ready) {
    register_worker(peer, *msg);
    return;
  }
  if (it == workers_.end()) {
    // Not registered (e.g. the broker restarted): DISCONNECT makes it re-register.
    if (msg->command != WorkerCommand::Disconnect) {
      spdlog::info("event=unknown_worker peer={} command={} action=disconnect", peer_name(peer),
                   mdp::command_name(msg->command));
      send(peer, mdp::disconnect_frames(), "DISCONNECT");
    }
    return;
  }
  Worker& w = it->second;
  w.last_seen = Clock::now();
  w.expiry = w.last_seen + config_.worker_expiry();
  switch (msg->command) {
    case WorkerCommand::Heartbeat:
      if (!msg->body.empty() && !msg->body[0].empty()) apply_status(w, msg->body[0]);
      break;
    case WorkerCommand::Partial: {
      auto job = w.in_flight.find(msg->reply_to);
      if (job == w.in_flight.end()) {
        ++counters_.dropped_duplicates;
        spdlog::info("event=dropped_partial worker={} reason=\"job not in flight on it\"",
                     w.worker_id);
        break;
      }
      mdp::Frames body = msg->body;
      if (!send(job->second->client,
                mdp::client_frames(mdp::ClientCommand::Partial, job->second->service,
                                   std::move(body)),
                "PARTIAL job " + job->second->id))
        spdlog::info("event=client_gone job={} dropped=PARTIAL", job->second->id);
      break;
    }
    case WorkerCommand::Final:
      worker_final(w, *msg);
      break;
    case WorkerCommand::Disconnect:
      delete_worker(peer, "worker sent DISCONNECT", false);
      break;
    default:
      // A valid but unexpected command (REQUEST from a worker): RFC says DISCONNECT.
      delete_worker(peer, std::string("unexpected ") + mdp::command_name(msg->command), true);
      break;
  }
}

void Broker::register_worker(const std::string& peer, const mdp::WorkerMessage& msg) {
  if (msg.service.rfind("mmi.", 0) == 0) {
    spdlog::warn("event=refused_worker peer={} service={} reason=\"mmi.* is reserved\"",
                 peer_name(peer), msg.service);
    if (workers_.count(peer)) {
      delete_worker(peer, "READY for reserved mmi.* service", true);
    } else {
      send(peer, mdp::disconnect_frames(), "DISCONNECT");
    }
    return;
  }
  if (shutting_down_) {
    send(peer, mdp::disconnect_frames(), "DISCONNECT");
    return;
  }
  // A second READY means the worker restarted behind the same routing id: what it had in
  // flight is lost, so re-queue it and take the new registration.
  if (workers_.count(peer)) delete_worker(peer, "worker sent READY again", false);

  Worker w;
  w.key = peer;
  w.service = msg.service;
  w.worker_id = peer_name(peer);
  w.last_seen = Clock::now();
  w.expiry = w.last_seen + config_.worker_expiry();
  if (!msg.body.empty() && !msg.body[0].empty()) {
    w.extended = true;
    const bool ok =
        for_each_field(msg.body[0], [&](const std::string& k, const msgpack::object& v) {
          int64_t n = 0;
          if (k == "capacity" && as_int(v, n) && n >= 1)
            w.capacity = n;
          else if (k == "state" && v.type == msgpack::type::STR && known_state(str(v)))
            w.state = str(v);
          else if (k == "worker_id" && v.type == msgpack::type::STR && v.via.str.size > 0)
            w.worker_id = str(v);
          else if (k == "pid" && as_int(v, n))
            w.pid = n;
          else if (k == "host" && v.type == msgpack::type::STR)
            w.host = str(v);
          else if (k == "model")
            read_model(v, w.model);
        });
    if (!ok) {
      spdlog::warn("event=bad_ready_metadata peer={} reason=\"not a msgpack map; ignored\"",
                   peer_name(peer));
      w.extended = false;
    }
  }
  // The same process (worker_id, pid and host) on a new connection: it reconnected after
  // losing the broker, and its old registration would otherwise hold jobs and credit until
  // the heartbeat expiry. Its old in-flight jobs are re-queued now.
  if (w.extended && w.pid != 0) {
    std::vector<std::string> stale;
    for (const auto& [key, old] : workers_)
      if (key != peer && old.extended && old.worker_id == w.worker_id && old.pid == w.pid &&
          old.host == w.host)
        stale.push_back(key);
    for (const auto& key : stale)
      delete_worker(key, "worker reconnected as " + peer_name(peer), false);
  }
  spdlog::info("event=worker_ready worker={} peer={} service={} state={} capacity={} model={}",
               w.worker_id, peer_name(peer), w.service, w.state, w.capacity,
               w.model.name.empty() ? "-" : w.model.name);
  Service& svc = service(w.service);
  svc.workers.push_back(peer);
  workers_.emplace(peer, std::move(w));
  dispatch(svc);
}

void Broker::apply_status(Worker& w, const std::string& frame) {
  const std::string before = w.state;
  const int64_t capacity_before = w.capacity;
  for_each_field(frame, [&](const std::string& k, const msgpack::object& v) {
    int64_t n = 0;
    if (k == "state" && v.type == msgpack::type::STR && known_state(str(v)))
      w.state = str(v);
    else if (k == "rss_bytes" && as_int(v, n))
      w.rss_bytes = n;
    else if (k == "capacity" && as_int(v, n) && n >= 1)
      w.capacity = n;
    else if (k == "model")
      read_model(v, w.model);  // the checkpoint's identity is known only after loading
  });
  if (w.state != before)
    spdlog::info("event=worker_state worker={} from={} to={}", w.worker_id, before, w.state);
  if (w.state != before || w.capacity != capacity_before) dispatch(service(w.service));
}

void Broker::worker_final(Worker& w, const mdp::WorkerMessage& msg) {
  auto it = w.in_flight.find(msg.reply_to);
  if (it == w.in_flight.end()) {
    ++counters_.dropped_duplicates;
    spdlog::info(
        "event=dropped_final worker={} reason=\"job not in flight on this worker "
        "(late or duplicate)\"",
        w.worker_id);
    return;
  }
  std::shared_ptr<Job> job = it->second;
  w.in_flight.erase(it);
  ++w.jobs_done;
  ++counters_.completed;
  Service& svc = service(job->service);
  --svc.in_flight;
  const double took = ms_between(job->dispatched_at, Clock::now());
  svc.service_ms = svc.service_ms > 0 ? 0.8 * svc.service_ms + 0.2 * took : took;
  std::string code;
  if (job->ecgq && msg.body.size() == 1) code = error_code_of(msg.body[0]);
  if (!code.empty()) ++counters_.errors[code];
  spdlog::info("event=completed job={} service={} worker={} attempts={} took_ms={:.1f} status={}",
               job->id, job->service, w.worker_id, job->attempts, took, code.empty() ? "ok" : code);
  if (code.empty() && msg.body.size() == 1) cache_result(*job, msg.body[0]);
  mdp::Frames body = msg.body;
  if (!send(job->client,
            mdp::client_frames(mdp::ClientCommand::Final, job->service, std::move(body)),
            "FINAL job " + job->id))
    spdlog::info("event=client_gone job={} dropped=FINAL", job->id);
  if (!shutting_down_) dispatch(svc);
}

void Broker::cache_result(const Job& job, const std::string& body) {
  if (job.content_key.empty() || !cache_.enabled()) return;
  auto result = schema::decode_result(body);
  // Errors are never cached: a retry may succeed (another worker, a later model load).
  if (!result || result->status != "ok" || result->error) return;
  // Keyed by the model the result says ran it, not by the one the broker expected.
  if (result->model.sha256.empty()) return;
  CacheKey key{job.content_key, result->model.sha256, result->model.precision};
  result->id.clear();
  result->meta.clear();  // a hit answers with its own job's id and meta
  if (cache_.insert(key, std::move(*result), body.size())) {
    spdlog::debug("event=cache_insert job={} service={} sha256={} precision={} entries={} bytes={}",
                  job.id, job.service, key.sha256, key.precision, cache_.stats().entries,
                  cache_.stats().bytes);
  }
}

std::optional<std::pair<std::string, std::string>> Broker::service_model(const Service& svc) const {
  std::optional<std::pair<std::string, std::string>> agreed;
  for (const auto& key : svc.workers) {
    const schema::ModelIdentity& m = workers_.at(key).model;
    // A worker reports its checkpoint's sha256 once it has loaded it; asleep workers keep it.
    if (m.sha256.empty()) continue;
    if (!agreed) {
      agreed.emplace(m.sha256, m.precision);
    } else if (agreed->first != m.sha256 || agreed->second != m.precision) {
      return std::nullopt;
    }
  }
  return agreed;
}

void Broker::delete_worker(std::string key, const std::string& reason, bool disconnect) {
  auto it = workers_.find(key);
  if (it == workers_.end()) return;
  Worker w = std::move(it->second);
  workers_.erase(it);
  Service& svc = service(w.service);
  svc.workers.erase(std::remove(svc.workers.begin(), svc.workers.end(), key), svc.workers.end());
  spdlog::info("event=worker_lost worker={} service={} reason=\"{}\" in_flight={}", w.worker_id,
               w.service, reason, w.in_flight.size());
  if (disconnect) send(key, mdp::disconnect_frames(), "DISCONNECT");
  // Re-queue in reverse so that push_front keeps the original dispatch order.
  std::vector<std::shared_ptr<Job>> lost;
  for (auto& [token, job] : w.in_flight) lost.push_back(job);
  std::sort(lost.begin(), lost.end(), [](const auto& a, const auto& b) { return a->seq > b->seq; });
  for (auto& job : lost) {
    --svc.in_flight;
    job->worker.clear();
    requeue(job, "worker " + w.worker_id + " lost: " + reason);
  }
  if (!shutting_down_) dispatch(svc);
}

void Broker::requeue(std::shared_ptr<Job> job, const std::string& reason) {
  if (shutting_down_) {
    finish_with_error(*job, "shutting_down", "the broker is shutting down; " + reason);
    return;
  }
  if (job->attempts >= config_.max_attempts) {
    finish_with_error(
        *job, "worker_lost",
        reason + "; gave up after " + std::to_string(job->attempts) + " attempts (max_attempts)");
    return;
  }
  ++counters_.redispatched;
  spdlog::info("event=requeued job={} service={} attempts={} reason=\"{}\"", job->id, job->service,
               job->attempts, reason);
  service(job->service).queue.push_front(std::move(job));
}

Worker* Broker::pick_worker(Service& svc) {
  Worker* best = nullptr;
  for (const auto& key : svc.workers) {
    Worker& w = workers_.at(key);
    if (w.free_slots() <= 0) continue;
    if (!best || state_rank(w.state) < state_rank(best->state) ||
        (state_rank(w.state) == state_rank(best->state) && w.free_slots() > best->free_slots()))
      best = &w;
  }
  return best;
}

void Broker::dispatch(Service& svc) {
  if (shutting_down_) return;
  while (!svc.queue.empty()) {
    Worker* w = pick_worker(svc);
    if (!w) return;
    std::shared_ptr<Job> job = svc.queue.pop();
    if (job->deadline && Clock::now() >= *job->deadline) {
      finish_with_error(*job, "deadline_exceeded", "deadline_ms passed while the job was queued",
                        "deadline_ms");
      continue;
    }
    if (!send_to_worker(*w, job)) {
      svc.queue.push_front(job);
      delete_worker(w->key, "unreachable", false);
      return;  // delete_worker dispatched again
    }
  }
}

bool Broker::send_to_worker(Worker& w, const std::shared_ptr<Job>& job) {
  const TimePoint now = Clock::now();
  const double queued_ms = ms_between(job->received, now);
  mdp::Frames body;
  if (job->ecgq) {
    body.push_back(
        schema::add_dispatch(job->body[0], {job->attempts + 1, queued_ms}, job->assigned_id));
  } else {
    body = job->body;
  }
  job->token = token_of(next_token_++);
  if (!send(w.key, mdp::worker_reply_frames(WorkerCommand::Request, job->token, std::move(body)),
            "REQUEST job " + job->id))
    return false;
  ++job->attempts;
  ++counters_.dispatched;
  job->worker = w.key;
  job->dispatched_at = now;
  w.in_flight[job->token] = job;
  ++service(job->service).in_flight;
  const bool wakes = state_rank(w.state) == 2;
  spdlog::info("event=dispatched job={} service={} worker={} state={} attempt={} queued_ms={:.1f}",
               job->id, job->service, w.worker_id, w.state, job->attempts, queued_ms);
  if (wakes) {
    w.state = "waking";
    if (job->ecgq) send_progress(*job, "waking", -1, w.worker_id);
  }
  return true;
}

void Broker::on_timer() {
  const TimePoint now = Clock::now();
  std::vector<std::string> expired;
  for (const auto& [key, w] : workers_)
    if (now >= w.expiry) expired.push_back(key);
  for (const auto& key : expired) delete_worker(key, "heartbeat expired", false);
  if (now >= expire_at_) {
    expire_queued();
    cache_.purge_expired();
    expire_at_ = now + std::chrono::milliseconds(20);
  }
  if (now >= heartbeat_at_) {
    send_heartbeats();
    heartbeat_at_ = now + config_.heartbeat_interval;
  }
}

void Broker::expire_queued() {
  const TimePoint now = Clock::now();
  // Services nobody serves or waits for are forgotten, so made-up names cannot pile up.
  for (auto it = services_.begin(); it != services_.end();) {
    const Service& s = it->second;
    if (s.queue.empty() && s.workers.empty() && s.in_flight == 0) {
      it = services_.erase(it);
    } else {
      ++it;
    }
  }
  for (auto& [name, svc] : services_) {
    if (svc.queue.empty()) continue;
    const bool no_workers = svc.workers.empty();
    auto gone = svc.queue.remove_if([&](const Job& j) {
      return (j.deadline && now >= *j.deadline) ||
             (no_workers && now - j.received >= config_.service_wait);
    });
    for (auto& job : gone) {
      if (job->deadline && now >= *job->deadline) {
        finish_with_error(*job, "deadline_exceeded", "deadline_ms passed while the job was queued",
                          "deadline_ms");
      } else {
        finish_with_error(*job, "no_worker",
                          "no worker registered for service '" + name + "' within service_wait=" +
                              std::to_string(config_.service_wait.count()) + "ms");
      }
    }
  }
}

void Broker::send_heartbeats() {
  std::map<std::string, int64_t> warm_left;  // keep_warm budget per ecgq service
  std::vector<std::string> gone;
  for (auto& [name, svc] : services_) {
    int64_t left = svc.ecgq ? config_.keep_warm : 0;
    for (const auto& key : svc.workers) {
      Worker& w = workers_.at(key);
      const bool keep = left > 0;
      if (keep) --left;
      if (keep != w.keep_warm)
        spdlog::info("event=keep_warm worker={} keep_warm={}", w.worker_id, keep);
      w.keep_warm = keep;
      std::string status;
      if (w.extended) {
        msgpack::sbuffer buf;
        msgpack::packer<msgpack::sbuffer> pk(buf);
        pk.pack_map(1);
        pk.pack(std::string("keep_warm"));
        pk.pack(keep);
        status.assign(buf.data(), buf.size());
      }
      if (!send(key, mdp::heartbeat_frames(status), "HEARTBEAT")) gone.push_back(key);
    }
  }
  for (const auto& key : gone) delete_worker(key, "unreachable", false);
}

}  // namespace ecgq::broker
