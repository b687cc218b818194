// The dispatch policy, all of it: which worker gets which job and when, when a queued job runs
// out of time, how long a refused client should wait, and which workers are kept warm. The
// queue order itself (re-queued jobs first, then round robin over clients) is ServiceQueue's.
#include <spdlog/spdlog.h>

#include <algorithm>

#include "broker/core.hpp"
#include "protocol/schema.hpp"

namespace ecgq::broker {

namespace {

// Dispatch preference: warm first, then workers that will be warm soon, then sleepers, which a
// job wakes (the worker loads its model on receipt).
int dispatch_rank(WorkerState state) {
  switch (state) {
    case WorkerState::Warm:
      return 0;
    case WorkerState::Warming:
    case WorkerState::Waking:
      return 1;
    case WorkerState::Asleep:
    case WorkerState::Cold:
      break;
    case WorkerState::Failed:
      return 3;  // never picked (takes_jobs)
  }
  return 2;
}

bool wakes_on_dispatch(WorkerState state) {
  return dispatch_rank(state) == 2;
}

// An 8-byte big-endian job token (docs/protocol.md section 2).
std::string token_of(uint64_t n) {
  std::string t(8, '\0');
  for (int i = 7; i >= 0; --i, n >>= 8) t[i] = static_cast<char>(n & 0xff);
  return t;
}

}  // namespace

void BrokerCore::dispatch_changed() {
  // Once per event, after it was applied: each service it changed is served once, over its
  // final state, and the pass changes nothing that would need another.
  std::vector<std::string> changed;
  changed.swap(changed_);
  if (!shutting_down_)
    for (const auto& name : changed)
      if (Service* svc = find_service(name)) dispatch(*svc);
  // Jobs that arrived in this event and still wait are told where they stand.
  for (const auto& job : just_queued_) {
    const Service* svc = find_service(job->service);
    if (job->ecgq_body && job->worker.empty() && !job->finished && svc != nullptr)
      send_progress(*job, "queued", static_cast<int64_t>(svc->queue.position(*job)), "");
  }
  just_queued_.clear();
}

void BrokerCore::dispatch(Service& svc) {
  // A retried job that no free worker may take (each failed it), or a pinned job whose model's
  // workers are all busy, waits aside, keeping its place. A pin no worker can serve expires.
  std::vector<std::shared_ptr<JobRecord>> waiting;
  while (!svc.queue.empty() && pick_worker(svc) != nullptr) {
    std::shared_ptr<JobRecord> job = svc.queue.pop();
    if (const char* code = queued_expiry(*job, svc)) {
      expire(*job, code, svc);
      continue;
    }
    if (Worker* w = pick_worker(svc, job.get())) {
      assign(*w, job);
    } else {
      waiting.push_back(std::move(job));
    }
  }
  for (auto it = waiting.rbegin(); it != waiting.rend(); ++it) svc.queue.push_front(*it);
}

Worker* BrokerCore::pick_worker(Service& svc, const JobRecord* job) {
  // Only workers that may take the job: dispatchable (not held back, not out of dispatch) and
  // able to answer (not failed, not draining, of the job's pinned model). A job is not given back
  // to a worker that failed it while another such worker exists (busy or not: the retry waits for
  // it). Then, among them with a free slot: the best state, then the most free slots (least
  // loaded); ties go to the earliest registered.
  const std::string pin = job != nullptr ? job->model_sha256 : std::string();
  const auto usable = [&](const Worker& w) { return w.dispatchable() && takes_jobs(w, pin); };
  const auto failed_it = [job](const Worker& w) {
    if (job == nullptr) return false;
    for (const FailedAttempt& f : job->failures)
      if (f.worker_key == w.key) return true;
    return false;
  };
  bool avoid_failed = false;
  for (const auto& key : svc.workers) {
    const Worker& w = workers_.at(key);
    avoid_failed = avoid_failed || (usable(w) && !failed_it(w));
  }
  if (job == nullptr || job->failures.empty()) avoid_failed = false;
  Worker* best = nullptr;
  for (const auto& key : svc.workers) {
    Worker& w = workers_.at(key);
    if (w.free_slots() <= 0 || !usable(w) || (avoid_failed && failed_it(w))) continue;
    if (best == nullptr || dispatch_rank(w.state) < dispatch_rank(best->state) ||
        (dispatch_rank(w.state) == dispatch_rank(best->state) &&
         w.free_slots() > best->free_slots()))
      best = &w;
  }
  return best;
}

bool BrokerCore::has_dispatchable_worker(const Service& svc) const {
  return std::any_of(svc.workers.begin(), svc.workers.end(), [&](const std::string& key) {
    const Worker& w = workers_.at(key);
    return w.dispatchable() && takes_jobs(w, "");
  });
}

void BrokerCore::assign(Worker& w, const std::shared_ptr<JobRecord>& job) {
  const double queued_ms = ms_between(job->received, now_);
  mdp::Frames body;
  if (job->ecgq_body) {
    body.push_back(
        schema::add_dispatch(job->body[0], {job->attempts + 1, queued_ms}, job->assigned_id));
  } else {
    body = job->body;
  }
  // A fresh token per dispatch: a reply to an earlier attempt is recognised as stale.
  job->token = token_of(next_token_++);
  ++job->attempts;
  ++counters_.dispatched;
  if (job->journaled) persist(JournalRecord::Kind::Dispatch, *job);
  job->worker = w.key;
  job->dispatched_at = now_;
  job->running_until = now_ + config_.job_time_limit(job->service);
  w.in_flight[job->token] = job;
  ++find_or_create_service(job->service).in_flight;
  mdp::Frames request =
      mdp::worker_reply_frames(mdp::WorkerCommand::Request, job->token, std::move(body));
  // With a journal the REQUEST waits for its Dispatch record (release_request sends it).
  if (job->journaled) {
    hold_request(job, std::move(request));
  } else {
    send(w.key, std::move(request), job->id);
  }
  spdlog::info("event=dispatched job={} service={} worker={} state={} attempt={} queued_ms={:.1f}",
               job->id, job->service, w.worker_id, state_name(w.state), job->attempts, queued_ms);
  // A sleeping worker wakes for the job: the client learns why it waits.
  if (wakes_on_dispatch(w.state)) {
    w.state = WorkerState::Waking;
    if (job->ecgq_body) send_progress(*job, "waking", -1, w.worker_id);
  }
}

const char* BrokerCore::queued_expiry(const JobRecord& job, const Service& svc) const {
  // Queued jobs (expire_in_flight limits dispatched ones).
  if (job.deadline && now_ >= *job.deadline) return "deadline_exceeded";
  if (pin_unservable(svc, job.model_sha256)) return "model_unavailable";
  // Workers held back, out of dispatch, failed or draining take no jobs: for a waiting job they
  // are no workers.
  if (has_dispatchable_worker(svc)) return nullptr;
  if (job.wait_for_worker) return now_ >= *job.wait_for_worker ? "no_worker" : nullptr;
  if (now_ - job.received >= config_.service_wait) return "no_worker";
  return nullptr;
}

void BrokerCore::expire(JobRecord& job, const char* code, const Service& svc) {
  if (std::string(code) == "deadline_exceeded") {
    finish_with_error(job, code, "deadline_ms passed while the job was queued", "deadline_ms");
  } else if (std::string(code) == "model_unavailable") {
    finish_with_error(job, code,
                      "no worker of service '" + svc.name + "' runs model " + job.model_sha256 +
                          (svc.model.sha256.empty() ? "" : " (it serves " + svc.model.sha256 + ")"),
                      "model_sha256");
  } else {
    const int64_t waited = static_cast<int64_t>(ms_between(job.received, now_));
    finish_with_error(
        job, code,
        "no worker took jobs of service '" + svc.name + "' for " + std::to_string(waited) + "ms (" +
            (job.wait_for_worker ? "wait_for_worker_ms, at most service_wait=" : "service_wait=") +
            std::to_string(config_.service_wait.count()) + "ms; failed, draining, held-back workers do not count)");
  }
}

void BrokerCore::expire_queued() {
  // Services nobody serves or waits for are forgotten, so made-up names cannot pile up.
  for (auto it = services_.begin(); it != services_.end();) {
    const Service& s = it->second;
    if (s.queue.empty() && s.workers.empty() && s.in_flight == 0) {
      changed_.erase(std::remove(changed_.begin(), changed_.end(), it->first), changed_.end());
      it = services_.erase(it);
    } else {
      ++it;
    }
  }
  for (auto& [name, svc] : services_) {
    if (svc.queue.empty()) continue;
    auto gone =
        svc.queue.remove_if([&](const JobRecord& j) { return queued_expiry(j, svc) != nullptr; });
    for (auto& job : gone) expire(*job, queued_expiry(*job, svc), svc);
  }
}

int64_t BrokerCore::retry_after_ms(const Service& svc) const {
  const double backlog = static_cast<double>(svc.queue.size()) + static_cast<double>(svc.in_flight);
  // The backlog at the measured pace of completions, once there is one.
  if (svc.drain.interval_ms() > 0)
    return std::max<int64_t>(100, static_cast<int64_t>(backlog * svc.drain.interval_ms()));
  // Before that: the backlog over the service's slots at its service time (1 s per job before
  // any sample).
  int64_t slots = 0;
  for (const auto& key : svc.workers) slots += workers_.at(key).capacity;
  const double per_job = svc.service_ms > 0 ? svc.service_ms : 1000.0;
  const double estimate = per_job * backlog / static_cast<double>(std::max<int64_t>(slots, 1));
  return std::max<int64_t>(100, static_cast<int64_t>(estimate));
}

bool BrokerCore::keeps_warm(const Service& svc, size_t registration_index) const {
  // The first keep_warm workers of an ecgq service, in registration order, are told to stay
  // warm (they do not sleep after idle_timeout); the others may sleep.
  return svc.ecgq_jobs && static_cast<int64_t>(registration_index) < config_.keep_warm;
}

}  // namespace ecgq::broker
