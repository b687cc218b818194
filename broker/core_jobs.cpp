// Jobs by id: results kept for result_ttl and read through mmi.job, idempotent submits (the same
// id from the same submitter is one execution), and the durable journal's side of the core:
// Persist actions out, Committed and Restore events in.
#include <spdlog/spdlog.h>

#include "broker/core.hpp"
#include "broker/job_intake.hpp"
#include "broker/key_role.hpp"
#include "protocol/schema.hpp"

namespace ecgq::broker {

using mdp::ClientCommand;

std::string BrokerCore::job_key(const std::string& submitter, const std::string& id) {
  // A client-chosen id is scoped to its submitter: another key's "job-1" is another job.
  return submitter + '\0' + id;
}

std::string BrokerCore::scoped_content_key(const std::string& submitter,
                                           std::string content_key) const {
  // A hit across keys would tell one key that another submitted this very ECG.
  if (content_key.empty() || submitter.empty() || config_.result_cache_scope == "shared")
    return content_key;
  return submitter + '\0' + content_key;
}

int64_t BrokerCore::unix_ms(TimePoint t) const {
  return wall_anchor_ms_ +
         std::chrono::duration_cast<std::chrono::milliseconds>(t - started_).count();
}

bool BrokerCore::answer_known_id(JobRecord& job) {
  // Only ids the client chose can repeat; the broker's own are unique per run.
  if (!job.ecgq_body || !job.assigned_id.empty()) return false;
  const std::string key = job_key(job.submitter, job.id);
  if (auto r = results_.find(key); r != results_.end()) {
    spdlog::info("event=resubmitted job={} answer=stored_result", job.id);
    job.finished = true;
    reply_client(job, ClientCommand::Final, r->second.body);
    return true;
  }
  auto live = live_.find(key);
  if (live == live_.end()) return false;
  auto running = live->second.lock();
  if (!running || running->finished) return false;
  // The same job again (a producer that reconnected): its answer goes to the new connection.
  spdlog::info("event=resubmitted job={} answer=rebound", job.id);
  running->client = job.client;
  if (running->accepted) send_progress(*running, "accepted", -1, "");
  return true;
}

bool BrokerCore::refuse_or_journal(JobRecord& job) {
  if (!durable_ || !job.ecgq_body) return false;
  const int64_t bytes = static_cast<int64_t>(job.body[0].size());
  // An unhealthy journal is still tried: the job is refused (journal_unavailable) only if its
  // own write fails, and the first write that succeeds again shows the disk recovered.
  if (journal_.bytes + awaiting_bytes_ + bytes > config_.journal_max_bytes) {
    journal_full_ = "the journal holds " + std::to_string(journal_.bytes) +
                    " bytes; journal_max_bytes is " + std::to_string(config_.journal_max_bytes);
    finish_with_error(job, "journal_full", journal_full_);
    return true;
  }
  journal_full_.clear();
  // The job is queued (and may be dispatched) at once; its producer hears `accepted` when the
  // Accept record commits, and its REQUEST leaves only once its Dispatch record, written after
  // the Accept record (often in the same transaction), has committed too.
  awaiting_bytes_ += bytes;
  persist(JournalRecord::Kind::Accept, job);
  job.journaled = true;
  return false;
}

void BrokerCore::queue_job(std::shared_ptr<JobRecord> job, Service& svc) {
  if (job->ecgq_body) live_[job_key(job->submitter, job->id)] = job;
  if (job->journaled && !job->accepted) awaiting_durable_[job->seq] = job;
  svc.queue.push_back(job);
  mark_changed(svc);
  // Told its position after the dispatch pass, if that pass leaves it waiting.
  just_queued_.push_back(std::move(job));
}

std::shared_ptr<JobRecord> BrokerCore::take_awaiting(uint64_t seq) {
  auto it = awaiting_durable_.find(seq);
  if (it == awaiting_durable_.end()) return nullptr;
  std::shared_ptr<JobRecord> job = std::move(it->second);
  awaiting_durable_.erase(it);
  awaiting_bytes_ -= static_cast<int64_t>(job->body[0].size());
  return job;
}

void BrokerCore::on_committed(const Committed& committed) {
  for (uint64_t seq : committed.durable) {
    std::shared_ptr<JobRecord> job = take_awaiting(seq);
    if (!job) continue;
    job->accepted = true;
    if (job->finished) continue;  // cancelled or expired meanwhile: its FINAL went already
    send_progress(*job, "accepted", -1, "");
    spdlog::info("event=accepted job={} service={}", job->id, job->service);
  }
  // Failures before releases: a withdrawn job's REQUEST (same transaction) must never leave.
  for (uint64_t seq : committed.failed) {
    std::shared_ptr<JobRecord> job = take_awaiting(seq);
    if (!job || job->finished) continue;
    withdraw(*job);
    live_.erase(job_key(job->submitter, job->id));
    finish_with_error(*job, "journal_unavailable",
                      "the job could not be made durable: " + committed.failure);
  }
  for (const DispatchCommit& d : committed.dispatched) release_request(d);
}

void BrokerCore::withdraw(JobRecord& job) {
  Service& svc = find_or_create_service(job.service);
  svc.queue.remove_if([&](const JobRecord& j) { return &j == &job; });
  if (auto w = workers_.find(job.worker);
      w != workers_.end() && w->second.in_flight.erase(job.token)) {
    --svc.in_flight;
    unhold(job);
  }
  job.worker.clear();
  mark_changed(svc);
}

void BrokerCore::hold_request(const std::shared_ptr<JobRecord>& job, mdp::Frames request) {
  job->held_request = std::move(request);
  held_dispatches_[job->seq] = job;
}

void BrokerCore::unhold(JobRecord& job) {
  if (job.held_request.empty()) return;
  job.held_request.clear();
  held_dispatches_.erase(job.seq);
}

void BrokerCore::release_request(const DispatchCommit& commit) {
  auto it = held_dispatches_.find(commit.seq);
  // A record of an earlier dispatch of a job dispatched again since: its own record follows.
  if (it == held_dispatches_.end() || it->second->attempts != commit.attempts) return;
  std::shared_ptr<JobRecord> job = std::move(it->second);
  held_dispatches_.erase(it);
  mdp::Frames request = std::move(job->held_request);
  job->held_request.clear();
  auto w = workers_.find(job->worker);
  if (w == workers_.end() || w->second.in_flight.count(job->token) == 0) return;
  if (job->finished) {
    // Answered while it waited (deadline_exceeded): the worker never had it; its slot is free.
    w->second.in_flight.erase(job->token);
    Service& svc = find_or_create_service(job->service);
    --svc.in_flight;
    mark_changed(svc);
    return;
  }
  send(job->worker, std::move(request), job->id);
}

void BrokerCore::on_restore(const Restore& restore) {
  size_t queued = 0, running = 0, done = 0;
  for (const JournaledJob& j : restore.jobs) {
    next_seq_ = std::max(next_seq_, j.seq + 1);
    if (j.state == JournalState::Done) {
      ++done;
    } else {
      (j.state == JournalState::Running ? running : queued) += 1;
    }
    restore_job(j, restore.wall_now_unix_ms);
  }
  for (const std::string& body : restore.dead_letters) {
    auto letter = ext::decode_dead_letter(body);
    if (letter.ok()) keep_dead_letter(std::move(*letter));
  }
  spdlog::info("event=restored queued={} running={} done={} dead_letters={}", queued, running, done,
               dead_letters_.size());
}

void BrokerCore::restore_job(const JournaledJob& j, int64_t wall_now_unix_ms) {
  const auto at = [&](int64_t when_unix_ms) {
    return now_ + std::chrono::milliseconds(when_unix_ms - wall_now_unix_ms);
  };
  const std::string key = job_key(j.submitter, j.id);
  if (j.state == JournalState::Done) {
    if (at(j.expires_unix_ms) <= now_) {
      JobRecord gone;
      gone.seq = j.seq;
      persist(JournalRecord::Kind::Forget, gone);
      return;
    }
    auto result = schema::decode_result(j.result);
    StoredResult& r = results_[key];
    r = StoredResult{j.result, result.ok() && result->status == "ok", j.attempts,
                     at(j.expires_unix_ms), j.seq};
    result_bytes_ += static_cast<int64_t>(j.result.size());
    result_order_.emplace_back(r.expires, key);
    return;
  }
  auto frames = unpack_frames(j.body);
  auto job = std::make_shared<JobRecord>();
  job->seq = j.seq;
  job->id = j.id;
  job->service = j.service;
  job->submitter = j.submitter;
  job->ecgq_body = config_.is_ecgq(j.service);
  job->attempts = j.attempts;
  job->received = at(j.received_unix_ms);
  if (j.deadline_unix_ms > 0) job->deadline = at(j.deadline_unix_ms);
  job->journaled = true;
  job->accepted = true;
  auto intake = frames.ok() && frames->size() == 1
                    ? read_job((*frames)[0], cache_.enabled())
                    : Expected<JobIntake>(Status("bad_request", "x"));
  if (!intake.ok()) {
    // The journal holds only jobs that were valid when accepted: this one is damaged.
    spdlog::error("event=restore_failed job={} reason=\"{}\"", j.id,
                  frames.ok() ? intake.status().message() : frames.status().message());
    job->body = {std::string()};
    finish_with_error(*job, "internal", "the journal's copy of this job could not be read");
    return;
  }
  job->body = std::move(*frames);
  job->model_sha256 = intake->model_sha256;
  if (intake->id.empty()) job->assigned_id = j.id;
  job->content_key = scoped_content_key(job->submitter, std::move(intake->content_key));
  // No client connection survives a restart: the producer asks for the result by id.
  queue_job(std::move(job), find_or_create_service(j.service));
}

void BrokerCore::persist(JournalRecord::Kind kind, const JobRecord& job, std::string result) {
  if (!durable_) return;
  metrics_.journal_record();
  JournalRecord r;
  r.kind = kind;
  r.job.seq = job.seq;
  r.job.attempts = job.attempts;
  if (kind == JournalRecord::Kind::Accept) {
    r.job.id = job.id;
    r.job.service = job.service;
    r.job.submitter = job.submitter;
    r.job.body = pack_frames(job.body);
    r.job.received_unix_ms = unix_ms(job.received);
    r.job.deadline_unix_ms = job.deadline ? unix_ms(*job.deadline) : 0;
  } else if (kind == JournalRecord::Kind::Finish) {
    r.job.result = std::move(result);
    r.job.expires_unix_ms = unix_ms(now_ + config_.result_ttl);
  }
  out_.push_back(Persist{std::move(r)});
}

void BrokerCore::keep_result(JobRecord& job, const std::string& body, bool ok) {
  if (!job.ecgq_body) return;
  const std::string key = job_key(job.submitter, job.id);
  auto live = live_.find(key);
  // Only jobs the broker took on are kept (not requests refused at the door).
  if (live == live_.end()) return;
  live_.erase(live);
  if (job.journaled) persist(JournalRecord::Kind::Finish, job, body);
  if (results_.count(key)) return;
  StoredResult r{body, ok, job.attempts, now_ + config_.result_ttl, job.journaled ? job.seq : 0};
  result_bytes_ += static_cast<int64_t>(body.size());
  result_order_.emplace_back(r.expires, key);
  results_.emplace(key, std::move(r));
  forget_results();
}

void BrokerCore::forget_results() {
  // Oldest first: by expiry (result_ttl), and beyond result_store_bytes.
  while (!result_order_.empty() &&
         (result_order_.front().first <= now_ || result_bytes_ > config_.result_store_bytes)) {
    auto [expires, key] = result_order_.front();
    result_order_.pop_front();
    auto it = results_.find(key);
    if (it == results_.end() || it->second.expires != expires) continue;
    result_bytes_ -= static_cast<int64_t>(it->second.body.size());
    if (it->second.seq != 0) {
      JobRecord gone;
      gone.seq = it->second.seq;
      persist(JournalRecord::Kind::Forget, gone);
    }
    results_.erase(it);
  }
}

std::string BrokerCore::find_job_key(const std::string& id) const {
  // Without CURVE every client is the same submitter ("").
  const std::string own = job_key(sender_.key, id);
  if (results_.count(own) != 0 || live_.count(own) != 0) return own;
  if (!curve_ || (sender_.roles & kRoleAdmin) == 0) return own;
  // An admin key reads any key's job: the first one with this id (assigned ids are unique).
  const std::string suffix = std::string(1, '\0') + id;
  const auto has_suffix = [&](const std::string& k) {
    return k.size() >= suffix.size() &&
           k.compare(k.size() - suffix.size(), suffix.size(), suffix) == 0;
  };
  for (const auto& [k, r] : results_)
    if (has_suffix(k)) return k;
  for (const auto& [k, l] : live_)
    if (has_suffix(k)) return k;
  return own;
}

ext::JournalInfo BrokerCore::journal_info() const {
  ext::JournalInfo j;
  if (!durable_) return j;
  j.enabled = true;
  j.path = config_.journal;
  j.sync = config_.journal_sync;
  j.bytes = journal_.bytes;
  j.max_bytes = config_.journal_max_bytes;
  for (const auto& [key, weak] : live_)
    if (auto job = weak.lock(); job && job->journaled) ++j.jobs;
  for (const auto& [key, r] : results_)
    if (r.seq != 0) ++j.jobs;
  j.state = !journal_.healthy ? "unavailable" : !journal_full_.empty() ? "full" : "ok";
  j.last_error = !journal_.healthy ? journal_.problem : journal_full_;
  j.transactions = journal_.transactions;
  j.records = journal_.records;
  return j;
}

std::string BrokerCore::job_reply(const std::string& peer, const std::string& body) {
  auto query = ext::decode_job_query(body);
  if (!query)
    return schema::error_result("", query.status().code(), query.status().message(),
                                query.status().field());
  // Another key's job is "unknown", exactly like one that never existed.
  ext::JobQueryReply reply;
  for (const std::string& id : query->ids) {
    ext::JobInfo info;
    info.id = id;
    info.state = "unknown";
    const std::string key = find_job_key(id);
    if (auto r = results_.find(key); r != results_.end()) {
      info.state = r->second.ok ? "done" : "failed";
      info.attempts = r->second.attempts;
      info.result = r->second.body;
    } else if (auto l = live_.find(key); l != live_.end()) {
      if (auto job = l->second.lock()) {
        info.attempts = job->attempts;
        // A producer back after a broker restart takes its jobs over (its old connection is
        // gone): the FINAL goes to the connection that asked. Only the submitting key's own
        // jobs: an admin may read another key's job, not take its answer away.
        if (query->watch && !job->finished && job->client != peer &&
            key == job_key(sender_.key, id)) {
          job->client = peer;
          spdlog::info("event=job_watched job={}", job->id);
        }
        if (!job->worker.empty() && job->attempts > 0 && workers_.count(job->worker) &&
            workers_.at(job->worker).in_flight.count(job->token)) {
          info.state = "running";
        } else {
          info.state = "queued";
          if (const auto svc = services_.find(job->service); svc != services_.end())
            info.position = static_cast<int64_t>(svc->second.queue.position(*job));
        }
      }
    }
    reply.jobs.push_back(std::move(info));
  }
  return ext::encode_job_reply(reply);
}

}  // namespace ecgq::broker
