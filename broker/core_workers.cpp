// Worker side of the broker: registration, status, replies, lost workers and re-dispatch,
// liveness and the keep_warm heartbeats.
#include <spdlog/spdlog.h>

#include <algorithm>

#include "broker/core.hpp"
#include "broker/msgpack_fields.hpp"
#include "common/error_code.hpp"
#include "common/text.hpp"
#include "protocol/schema.hpp"

namespace ecgq::broker {

using mdp::WorkerCommand;

namespace {

// Fields of READY metadata or heartbeat status that were unusable and ignored.
void log_skipped(const ext::Skipped& skipped, const std::string& worker, const char* frame) {
  for (const Status& s : skipped)
    spdlog::warn("event=ignored_field worker={} frame={} field={} reason=\"{}\"", worker, frame,
                 s.field(), s.message());
}

}  // namespace

void BrokerCore::on_worker(const std::string& peer, const mdp::Frames& frames) {
  auto msg = mdp::parse_worker(frames);
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
  auto it = workers_.find(peer);
  if (it == workers_.end()) {
    // Not registered (e.g. the broker restarted): DISCONNECT makes it re-register.
    if (msg->command != WorkerCommand::Disconnect) {
      spdlog::info("event=unknown_worker peer={} command={} action=disconnect", peer_name(peer),
                   mdp::command_name(msg->command));
      disconnect(peer);
    }
    return;
  }
  Worker& w = it->second;
  // Any message proves the worker alive (RFC 18).
  w.last_seen = now_;
  w.expiry = now_ + config_.worker_expiry();
  switch (msg->command) {
    case WorkerCommand::Heartbeat:
      if (!msg->body.empty() && !msg->body[0].empty()) apply_status(w, msg->body[0]);
      break;
    case WorkerCommand::Partial:
      worker_partial(w, *msg);
      break;
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

void BrokerCore::register_worker(const std::string& peer, const mdp::WorkerMessage& msg) {
  if (msg.service.rfind("mmi.", 0) == 0) {
    spdlog::warn("event=refused_worker peer={} service={} reason=\"mmi.* is reserved\"",
                 peer_name(peer), msg.service);
    if (workers_.count(peer)) {
      delete_worker(peer, "READY for reserved mmi.* service", true);
    } else {
      disconnect(peer);
    }
    return;
  }
  if (shutting_down_) {
    disconnect(peer);
    return;
  }
  // A second READY means the worker restarted behind the same routing id: what it had in
  // flight is lost, so re-queue it and take the new registration.
  if (workers_.count(peer)) delete_worker(peer, "worker sent READY again", false);
  Worker w = new_worker(peer, msg);
  // First: a worker that registers again (e.g. under its model's new name) is not its own rival.
  retire_stale_registrations(w);
  // Workers name services as jobs do: made-up names count toward max_services too.
  if (find_service(w.service) == nullptr) {
    if (const std::string why = why_no_new_service("worker"); !why.empty()) {
      refuse_worker(peer, w, "queue_full", why);
      return;
    }
  }
  Service& svc = find_or_create_service(w.service);
  // One model per service (core_admission.cpp).
  if (const std::string problem = admission_problem(svc, w); !problem.empty()) {
    refuse_worker(peer, w, "model_mismatch", problem);
    return;
  }
  spdlog::info(
      "event=worker_ready worker={} peer={} service={} state={} capacity={} model={} sha256={}",
      w.worker_id, peer_name(peer), w.service, state_name(w.state), w.capacity,
      w.model.name.empty() ? "-" : w.model.name, w.model.sha256.empty() ? "-" : w.model.sha256);
  if (w.state == WorkerState::Failed)
    spdlog::warn("event=worker_failed worker={} service={} reason=\"{}\"", w.worker_id, w.service,
                 loggable(w.reason, 512));
  adopt_model(svc, w);
  svc.workers.push_back(peer);
  workers_.emplace(peer, std::move(w));
  mark_changed(svc);
}

Worker BrokerCore::new_worker(const std::string& peer, const mdp::WorkerMessage& msg) const {
  Worker w;
  w.key = peer;
  w.service = msg.service;
  w.worker_id = peer_name(peer);
  w.last_seen = now_;
  w.expiry = now_ + config_.worker_expiry();
  // Without metadata (a strict RFC 18 worker): capacity 1, warm, no extension frames.
  if (msg.body.empty() || msg.body[0].empty()) return w;
  ext::Skipped skipped;
  auto meta = ext::decode_ready(msg.body[0], &skipped);
  if (!meta) {
    spdlog::warn("event=bad_ready_metadata peer={} reason=\"{}; ignored\"", peer_name(peer),
                 meta.status().message());
    return w;
  }
  w.extended = true;
  if (meta->state) w.state = *meta->state;
  if (meta->worker_id) w.worker_id = *meta->worker_id;
  if (meta->capacity) {
    w.capacity = capped_capacity(*meta->capacity);
    if (w.capacity < *meta->capacity)
      spdlog::warn(
          "event=capacity_capped worker={} advertised={} capacity={} (max_worker_capacity)",
          w.worker_id, *meta->capacity, w.capacity);
  }
  if (meta->pid) w.pid = *meta->pid;
  if (meta->host) w.host = *meta->host;
  if (meta->reason) w.reason = *meta->reason;
  if (meta->model) ext::update_model(w.model, *meta->model);
  log_skipped(skipped, w.worker_id, "ready");
  return w;
}

void BrokerCore::retire_stale_registrations(const Worker& fresh) {
  // The same process (worker_id, pid and host) on a new connection: it reconnected after
  // losing the broker, and its old registration would otherwise hold jobs and credit until
  // the heartbeat expiry. Its old in-flight jobs are re-queued now.
  if (!fresh.extended || fresh.pid == 0) return;
  std::vector<std::string> stale;
  for (const auto& [key, old] : workers_)
    if (key != fresh.key && old.extended && old.worker_id == fresh.worker_id &&
        old.pid == fresh.pid && old.host == fresh.host)
      stale.push_back(key);
  for (const auto& key : stale)
    delete_worker(key, "worker reconnected as " + peer_name(fresh.key), false);
}

void BrokerCore::apply_status(Worker& w, const std::string& frame) {
  ext::Skipped skipped;
  auto status = ext::decode_worker_status(frame, &skipped);
  if (!status) return;  // a status that is not a map says nothing; the heartbeat still counts
  const WorkerState before = w.state;
  const int64_t capacity_before = w.capacity;
  if (status->state) w.state = *status->state;
  if (status->rss_bytes) w.rss_bytes = *status->rss_bytes;
  if (status->capacity) w.capacity = capped_capacity(*status->capacity);
  w.reason = w.state == WorkerState::Failed && status->reason ? *status->reason : std::string();
  // The checkpoint's identity is known only after loading.
  const schema::ModelIdentity model_before = w.model;
  if (status->model) ext::update_model(w.model, *status->model);
  log_skipped(skipped, w.worker_id, "heartbeat");
  if (w.state != before)
    spdlog::info("event=worker_state worker={} from={} to={} reason=\"{}\"", w.worker_id,
                 state_name(before), state_name(w.state), loggable(w.reason, 512));
  // A model first named now is admitted as at READY, or the worker is refused.
  if (!admit_reported_model(w.key, model_before)) return;
  // A worker that became warm (or took more capacity) may take queued jobs now.
  if (w.state != before || w.capacity != capacity_before)
    mark_changed(find_or_create_service(w.service));
}

void BrokerCore::worker_partial(Worker& w, const mdp::WorkerMessage& msg) {
  auto it = w.in_flight.find(msg.reply_to);
  if (it == w.in_flight.end()) {
    ++counters_.dropped_duplicates;
    spdlog::info("event=dropped_partial worker={} reason=\"job not in flight on it\"", w.worker_id);
    return;
  }
  const JobRecord& job = *it->second;
  send(job.client, mdp::client_frames(mdp::ClientCommand::Partial, job.service, msg.body), job.id);
}

void BrokerCore::worker_final(Worker& w, const mdp::WorkerMessage& msg) {
  // Any FINAL proves the worker computes again (max_job_time held it back).
  if (w.held_back) {
    w.held_back = false;
    spdlog::info("event=worker_back worker={} reason=\"sent a FINAL\"", w.worker_id);
    mark_changed(find_or_create_service(w.service));
  }
  auto it = w.in_flight.find(msg.reply_to);
  if (it == w.in_flight.end()) {
    ++counters_.dropped_duplicates;
    spdlog::info(
        "event=dropped_final worker={} reason=\"job not in flight on this worker "
        "(late or duplicate)\"",
        w.worker_id);
    return;
  }
  std::shared_ptr<JobRecord> job = it->second;
  w.in_flight.erase(it);
  job->worker.clear();
  ++w.jobs_done;
  Service& svc = find_or_create_service(job->service);
  --svc.in_flight;
  // The worker has a free slot again.
  mark_changed(svc);
  if (job->finished) {
    // The broker answered it already (its deadline passed while it ran): nothing may follow.
    ++counters_.dropped_duplicates;
    spdlog::info("event=dropped_final job={} worker={} reason=\"the job was already answered\"",
                 job->id, w.worker_id);
    return;
  }
  const double took = ms_between(job->dispatched_at, now_);
  svc.service_ms = svc.service_ms > 0 ? 0.8 * svc.service_ms + 0.2 * took : took;
  svc.drain.completed(now_, svc.in_flight > 0 || !svc.queue.empty());
  const FinalVerdict verdict = read_result(*job, msg.body);
  if (verdict.worker_fault) {
    // The worker's own failure: the job is retried elsewhere, the worker is counted against.
    spdlog::info(
        "event=worker_failed job={} service={} worker={} attempts={} code={} reason=\"{}\"",
        job->id, job->service, w.worker_id, job->attempts, verdict.code, loggable(verdict.message));
    FailedAttempt failure{w.worker_id, w.key, verdict.code, loggable(verdict.message, 256)};
    count_worker_failure(w, failure);
    requeue(job, std::move(failure));
    return;
  }
  w.failures_in_row = 0;
  ++counters_.completed;
  if (!verdict.code.empty()) ++counters_.errors[verdict.code];
  spdlog::info("event=completed job={} service={} worker={} attempts={} took_ms={:.1f} status={}",
               job->id, job->service, w.worker_id, job->attempts, took,
               verdict.code.empty() ? "ok" : verdict.code);
  observe_final(*job, verdict);
  if (msg.body.size() == 1) keep_result(*job, msg.body[0], verdict.code.empty());
  send(job->client, mdp::client_frames(mdp::ClientCommand::Final, job->service, msg.body), job->id);
  // A worker a rollout replaced leaves once its last job is answered.
  retire_when_drained(w.key);
}

void BrokerCore::observe_final(const JobRecord& job, const FinalVerdict& verdict) {
  metrics_.job_finished(job.service, verdict.code.empty() ? "ok" : verdict.code);
  // The phases the worker measured (an ok result's timings).
  if (verdict.timings) metrics_.job_timings(job.service, *verdict.timings, verdict.cold_start);
}

FinalVerdict BrokerCore::read_result(const JobRecord& job, const mdp::Frames& body) {
  // Generic services' bodies are their own business.
  if (!job.ecgq_body) return {};
  if (body.size() != 1)
    return {"bad_result",
            "the worker's FINAL has " + std::to_string(body.size()) +
                " body frames, expected one msgpack result",
            true, {}, false};
  auto result = schema::decode_result(body[0]);
  if (!result)
    return {"bad_result", "the worker's FINAL is not a result: " + result.status().message(), true,
            {}, false};
  // An error about a body the worker could not read may name no job; anything else must name
  // this one.
  if (result->id != job.id && !(result->error && result->id.empty()))
    return {"bad_result", "the worker's FINAL names job '" + loggable(result->id, 64) + "'", true,
            {}, false};
  if (result->error)
    return {result->error->code, result->error->message, is_worker_fault(result->error->code), {},
            false};
  FinalVerdict ok;
  ok.timings = result->timings;
  ok.cold_start = result->cold_start;
  // Keyed by the model the result says ran it, not by the one the broker expected.
  if (result->status == "ok" && !result->model.sha256.empty() && !job.content_key.empty() &&
      cache_.enabled())
    cache_result(job, std::move(*result), body[0].size());
  return ok;
}

void BrokerCore::cache_result(const JobRecord& job, schema::Result result, size_t bytes) {
  // Errors are never cached: a retry may succeed (another worker, a later model load).
  CacheKey key{job.content_key, result.model.sha256, result.model.precision};
  result.id.clear();
  result.meta.clear();  // a hit answers with its own job's id and meta
  if (cache_.insert(key, std::move(result), bytes)) {
    spdlog::debug("event=cache_insert job={} service={} sha256={} precision={} entries={} bytes={}",
                  job.id, job.service, key.sha256, key.precision, cache_.stats().entries,
                  cache_.stats().bytes);
  }
}

std::optional<std::pair<std::string, std::string>> BrokerCore::service_model(
    const Service& svc) const {
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

void BrokerCore::delete_worker(const std::string& key, const std::string& reason,
                               bool disconnect_it) {
  auto it = workers_.find(key);
  if (it == workers_.end()) return;
  Worker w = std::move(it->second);
  workers_.erase(it);
  Service& svc = find_or_create_service(w.service);
  svc.workers.erase(std::remove(svc.workers.begin(), svc.workers.end(), key), svc.workers.end());
  spdlog::info("event=worker_lost worker={} service={} reason=\"{}\" in_flight={}", w.worker_id,
               w.service, reason, w.in_flight.size());
  if (disconnect_it) disconnect(key);
  // Re-queue in reverse so that push_front keeps the original dispatch order.
  std::vector<std::shared_ptr<JobRecord>> lost;
  for (auto& [token, job] : w.in_flight) lost.push_back(job);
  std::sort(lost.begin(), lost.end(), [](const auto& a, const auto& b) { return a->seq > b->seq; });
  for (auto& job : lost) {
    --svc.in_flight;
    job->worker.clear();
    if (!job->held_request.empty()) {
      // Its REQUEST never left (it waited for its Dispatch record): not an attempt.
      unhold(*job);
      --job->attempts;
      --counters_.dispatched;
      svc.queue.push_front(job);
      continue;
    }
    requeue(job, FailedAttempt{w.worker_id, key, "worker_lost", "worker lost: " + reason});
  }
  forget_unserved_model(svc);
  mark_changed(svc);
}

void BrokerCore::undo_dispatch(Worker& w, const std::string& token) {
  auto it = w.in_flight.find(token);
  if (it == w.in_flight.end()) return;
  std::shared_ptr<JobRecord> job = it->second;
  w.in_flight.erase(it);
  unhold(*job);
  --job->attempts;
  --counters_.dispatched;
  job->worker.clear();
  Service& svc = find_or_create_service(job->service);
  --svc.in_flight;
  svc.queue.push_front(std::move(job));
  mark_changed(svc);
}

void BrokerCore::requeue(std::shared_ptr<JobRecord> job, FailedAttempt failure) {
  // A job the broker already answered (deadline_exceeded while it ran) is not run again.
  if (job->finished) return;
  const std::string reason = "worker " + failure.worker + ": " + failure.message;
  const std::string code = failure.code;
  job->failures.push_back(std::move(failure));
  if (shutting_down_) {
    finish_with_error(*job, "shutting_down", "the broker is shutting down; " + reason);
    return;
  }
  if (job->attempts >= config_.max_attempts) {
    dead_letter(*job, code);
    finish_with_error(
        *job, code,
        reason + "; gave up after " + std::to_string(job->attempts) + " attempts (max_attempts)");
    return;
  }
  ++counters_.redispatched;
  metrics_.redispatched(job->service);
  spdlog::info("event=requeued job={} service={} attempts={} code={} reason=\"{}\"", job->id,
               job->service, job->attempts, code, reason);
  Service& svc = find_or_create_service(job->service);
  svc.queue.push_front(std::move(job));
  mark_changed(svc);
}

void BrokerCore::expire_workers() {
  // RFC 18: a worker silent for heartbeat_liveness intervals is gone.
  std::vector<std::string> expired;
  for (const auto& [key, w] : workers_)
    if (now_ >= w.expiry) expired.push_back(key);
  for (const auto& key : expired) delete_worker(key, "heartbeat expired", false);
}

void BrokerCore::send_heartbeats() {
  for (auto& [name, svc] : services_) {
    for (size_t i = 0; i < svc.workers.size(); ++i) {
      Worker& w = workers_.at(svc.workers[i]);
      const bool keep = keeps_warm(svc, i);
      if (keep != w.keep_warm)
        spdlog::info("event=keep_warm worker={} keep_warm={}", w.worker_id, keep);
      w.keep_warm = keep;
      // Only a worker that sent READY metadata understands the status frame.
      const std::string status = w.extended ? ext::encode_broker_heartbeat({keep}) : std::string();
      send(w.key, mdp::heartbeat_frames(status));
    }
  }
}

}  // namespace ecgq::broker
