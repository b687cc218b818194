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
  }
  return 2;
}

bool wakes_on_dispatch(WorkerState state) { return dispatch_rank(state) == 2; }

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
  while (!svc.queue.empty()) {
    Worker* w = pick_worker(svc);
    if (w == nullptr) return;
    std::shared_ptr<JobRecord> job = svc.queue.pop();
    if (const char* code = queued_expiry(*job, svc)) {
      expire(*job, code, svc);
      continue;
    }
    assign(*w, job);
  }
}

Worker* BrokerCore::pick_worker(Service& svc) {
  // Among workers with a free slot: the best state, then the most free slots (least loaded);
  // ties go to the earliest registered.
  Worker* best = nullptr;
  for (const auto& key : svc.workers) {
    Worker& w = workers_.at(key);
    if (w.free_slots() <= 0) continue;
    if (best == nullptr || dispatch_rank(w.state) < dispatch_rank(best->state) ||
        (dispatch_rank(w.state) == dispatch_rank(best->state) &&
         w.free_slots() > best->free_slots()))
      best = &w;
  }
  return best;
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
  w.in_flight[job->token] = job;
  ++find_or_create_service(job->service).in_flight;
  send(w.key, mdp::worker_reply_frames(mdp::WorkerCommand::Request, job->token, std::move(body)),
       job->id);
  spdlog::info("event=dispatched job={} service={} worker={} state={} attempt={} queued_ms={:.1f}",
               job->id, job->service, w.worker_id, state_name(w.state), job->attempts, queued_ms);
  // A sleeping worker wakes for the job: the client learns why it waits.
  if (wakes_on_dispatch(w.state)) {
    w.state = WorkerState::Waking;
    if (job->ecgq_body) send_progress(*job, "waking", -1, w.worker_id);
  }
}

const char* BrokerCore::queued_expiry(const JobRecord& job, const Service& svc) const {
  // Queued jobs only: once dispatched, the worker enforces the deadline.
  if (job.deadline && now_ >= *job.deadline) return "deadline_exceeded";
  if (svc.workers.empty() && now_ - job.received >= config_.service_wait) return "no_worker";
  return nullptr;
}

void BrokerCore::expire(JobRecord& job, const char* code, const Service& svc) {
  if (std::string(code) == "deadline_exceeded") {
    finish_with_error(job, code, "deadline_ms passed while the job was queued", "deadline_ms");
  } else {
    finish_with_error(job, code,
                      "no worker registered for service '" + svc.name + "' within service_wait=" +
                          std::to_string(config_.service_wait.count()) + "ms");
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
