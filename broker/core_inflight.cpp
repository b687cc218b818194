// Nothing stuck: the limits on a dispatched job (max_job_time, deadline_ms after dispatch), the
// count of a worker's own failures (max_worker_failures takes it out of dispatch) and the
// dead-letter list of jobs that exhausted max_attempts.
#include <spdlog/spdlog.h>

#include "broker/core.hpp"

namespace ecgq::broker {

int64_t BrokerCore::capped_capacity(int64_t advertised) const {
  // A worker's word on its capacity is not trusted beyond the broker's bound: a worker that
  // advertises 1000 and never answers would otherwise swallow the whole queue.
  return std::min(advertised, config_.max_worker_capacity);
}

void BrokerCore::expire_in_flight() {
  // Collected first: answering and taking back change the maps being walked.
  std::vector<std::pair<std::string, std::string>> overdue;  // worker key, token
  std::vector<std::shared_ptr<JobRecord>> past_deadline;
  for (const auto& [key, w] : workers_)
    for (const auto& [token, job] : w.in_flight) {
      if (now_ >= job->running_until) {
        overdue.emplace_back(key, token);
      } else if (!job->finished && job->deadline && now_ >= *job->deadline) {
        past_deadline.push_back(job);
      }
    }
  for (const auto& job : past_deadline) {
    // The client is answered now; the job keeps its worker's slot until that worker answers
    // (the FINAL is dropped) or max_job_time passes.
    const Worker& w = workers_.at(job->worker);
    finish_with_error(*job, "deadline_exceeded",
                      "deadline_ms passed while the job ran on worker " + w.worker_id,
                      "deadline_ms");
  }
  for (const auto& [key, token] : overdue) take_back(workers_.at(key), token);
}

void BrokerCore::take_back(Worker& w, const std::string& token) {
  auto it = w.in_flight.find(token);
  std::shared_ptr<JobRecord> job = it->second;
  w.in_flight.erase(it);
  job->worker.clear();
  unhold(*job);
  Service& svc = find_or_create_service(job->service);
  --svc.in_flight;
  mark_changed(svc);
  const int64_t limit_ms = config_.job_time_limit(job->service).count();
  // The worker may be stuck: it gets no new job until a FINAL or a fresh READY shows otherwise.
  w.held_back = true;
  spdlog::warn("event=job_time_exceeded job={} service={} worker={} max_job_time_ms={} action={}",
               job->id, job->service, w.worker_id, limit_ms,
               job->finished ? "dropped" : "redispatch");
  FailedAttempt failure{w.worker_id, w.key, "worker_lost",
                        "not finished within max_job_time=" + std::to_string(limit_ms) + "ms"};
  count_worker_failure(w, failure);
  requeue(std::move(job), std::move(failure));
}

void BrokerCore::count_worker_failure(Worker& w, const FailedAttempt& failure) {
  ++w.failures_in_row;
  if (w.failures_in_row < config_.max_worker_failures || !w.out_of_dispatch.empty()) return;
  w.out_of_dispatch = std::to_string(w.failures_in_row) +
                      " worker-side failures in a row (max_worker_failures), the last " +
                      failure.code + ": " + failure.message;
  spdlog::warn(
      "event=worker_out_of_dispatch worker={} service={} failures={} last_code={} "
      "reason=\"no jobs until it re-registers\"",
      w.worker_id, w.service, w.failures_in_row, failure.code);
  mark_changed(find_or_create_service(w.service));
}

void BrokerCore::dead_letter(const JobRecord& job, const std::string& code) {
  ext::DeadLetter d;
  d.id = job.id;
  d.service = job.service;
  d.failed_unix_ms = unix_ms(now_);
  d.code = code;
  for (const FailedAttempt& f : job.failures) d.attempts.push_back({f.worker, f.code, f.message});
  spdlog::warn("event=dead_lettered job={} service={} attempts={} code={}", job.id, job.service,
               job.attempts, code);
  if (config_.dead_letter_max == 0) return;
  // With a journal the list survives a restart (the journal keeps the newest dead_letter_max).
  if (durable_) {
    JournalRecord r;
    r.kind = JournalRecord::Kind::DeadLetter;
    r.job.seq = job.seq;
    r.job.result = ext::encode_dead_letter(d);
    out_.push_back(Persist{std::move(r)});
  }
  keep_dead_letter(std::move(d));
}

void BrokerCore::keep_dead_letter(ext::DeadLetter letter) {
  if (config_.dead_letter_max == 0) return;
  dead_letters_.push_back(std::move(letter));
  while (static_cast<int64_t>(dead_letters_.size()) > config_.dead_letter_max)
    dead_letters_.pop_front();
}

}  // namespace ecgq::broker
