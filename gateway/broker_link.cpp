#include "gateway/broker_link.hpp"

#include <spdlog/spdlog.h>

#include "common/text.hpp"

namespace ecgq::gateway {

namespace {

// Slice of one poll of a connection while jobs are outstanding: the added latency of a result.
constexpr Millis kPollSlice{1};

}  // namespace

schema::Result local_error(const std::string& id, const std::string& code,
                           const std::string& message, const std::string& field) {
  schema::Result r;
  r.id = id;
  r.status = "error";
  r.attempts = 0;
  r.error = schema::ErrorInfo{code, message, field, std::nullopt};
  return r;
}

BrokerLink::BrokerLink(LinkOptions options) : options_(std::move(options)) {}

BrokerLink::~BrokerLink() {
  stop();
}

void BrokerLink::start() {
  for (int64_t i = 0; i < options_.connections; ++i) {
    client::ClientOptions o;
    o.broker = options_.broker;
    o.curve = options_.curve;
    o.service = options_.service;
    o.timeout = options_.broker_timeout;
    clients_.push_back(std::make_unique<client::Client>(o));
  }
  status_due_ = SteadyClock::now();
  thread_ = std::thread([this] { run(); });
}

void BrokerLink::stop() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (stopping_) return;
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
  std::deque<Submission> left;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    left.swap(inbox_);
  }
  for (auto& s : left) {
    s.done(local_error(s.job.id, "shutting_down", "the gateway is stopping"));
    in_flight_.fetch_sub(1);
  }
  std::vector<std::pair<std::string, JobLookup>> lookups;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    lookups.swap(lookups_);
  }
  for (auto& [id, done] : lookups) done(Status("shutting_down", "the gateway is stopping"));
  auto pending = std::move(pending_);
  pending_.clear();
  for (auto& [id, p] : pending) {
    p.done(local_error(id, "shutting_down", "the gateway is stopping"));
    in_flight_.fetch_sub(1);
  }
}

bool BrokerLink::submit(schema::Job job, Millis wait, JobDone done, JobProgress progress) {
  // Count first, so that concurrent submitters never overshoot the bound together.
  if (in_flight_.fetch_add(1) >= options_.max_in_flight) {
    in_flight_.fetch_sub(1);
    return false;
  }
  {
    std::lock_guard<std::mutex> lock(mutex_);
    inbox_.push_back(Submission{std::move(job), wait, std::move(done), std::move(progress)});
  }
  wake_.notify_one();
  return true;
}

void BrokerLink::cancel(const std::string& id) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    cancels_.push_back(id);
  }
  wake_.notify_one();
}

void BrokerLink::lookup(const std::string& id, JobLookup done) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!stopping_) {
      lookups_.emplace_back(id, std::move(done));
      done = nullptr;
    }
  }
  if (done) return done(Status("shutting_down", "the gateway is stopping"));
  wake_.notify_one();
}

void BrokerLink::answer_lookups(std::vector<std::pair<std::string, JobLookup>> lookups) {
  for (auto& [id, done] : lookups) {
    auto reply = clients_[0]->mmi("mmi.job", {ext::encode_job_query({{id}})}, Millis(2000));
    if (!reply) {
      done(reply.status());
      continue;
    }
    const std::string body = reply->empty() ? std::string() : (*reply)[0];
    if (body == "501") {
      done(Status("unsupported", "the broker does not offer mmi.job"));
      continue;
    }
    auto jobs = ext::decode_job_reply(body);
    if (!jobs) {
      done(jobs.status());
    } else if (jobs->jobs.size() != 1) {
      done(Status("bad_result", "mmi.job answered for " + std::to_string(jobs->jobs.size()) +
                                    " jobs, asked for one"));
    } else {
      done(std::move(jobs->jobs[0]));
    }
  }
}

StatusSnapshot BrokerLink::status() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return snapshot_;
}

std::vector<std::string> BrokerLink::labels() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return labels_;
}

void BrokerLink::run() {
  while (true) {
    {
      std::unique_lock<std::mutex> lock(mutex_);
      if (stopping_) return;
      // Idle: sleep until a submission, a cancel or the next status refresh.
      if (pending_.empty() && inbox_.empty() && cancels_.empty() && lookups_.empty()) {
        wake_.wait_until(lock, status_due_, [&] {
          return stopping_ || !inbox_.empty() || !cancels_.empty() || !lookups_.empty();
        });
        if (stopping_) return;
      }
    }
    take_inbox();
    if (SteadyClock::now() >= status_due_) refresh_status();
    for (size_t i = 0; i < clients_.size(); ++i) poll_connection(i);
    expire_jobs();
  }
}

void BrokerLink::take_inbox() {
  std::deque<Submission> inbox;
  std::vector<std::string> cancels;
  std::vector<std::pair<std::string, JobLookup>> lookups;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    inbox.swap(inbox_);
    cancels.swap(cancels_);
    lookups.swap(lookups_);
  }
  for (auto& s : inbox) {
    const size_t c = next_connection_++ % clients_.size();
    const std::string id = s.job.id;
    const bool has_deadline = s.job.deadline_ms.has_value();
    auto sent = clients_[c]->submit(std::move(s.job));
    if (!sent) {
      s.done(local_error(id, sent.status().code(), sent.status().message()));
      in_flight_.fetch_sub(1);
      continue;
    }
    pending_[id] = Pending{std::move(s.done), std::move(s.progress), SteadyClock::now() + s.wait,
                           has_deadline, c};
  }
  answer_lookups(std::move(lookups));
  for (const auto& id : cancels) {
    auto it = pending_.find(id);
    if (it == pending_.end()) continue;
    auto reply = clients_[it->second.connection]->cancel({id}, Millis(500));
    spdlog::debug("event=cancel job={} ok={}", loggable(id), reply.ok());
  }
}

void BrokerLink::poll_connection(size_t index) {
  // One short wait on the first connection keeps the loop from spinning; the others are drained.
  Millis wait = index == 0 && !pending_.empty() ? kPollSlice : Millis(0);
  while (true) {
    auto ev = clients_[index]->poll(wait);
    if (!ev) return fail_connection(index, ev.status());
    if (!ev->has_value()) return;
    wait = Millis(0);
    client::JobEvent& e = **ev;
    if (e.result) {
      finish(e.id, std::move(*e.result));
    } else if (e.progress) {
      auto it = pending_.find(e.id);
      if (it != pending_.end() && it->second.progress) it->second.progress(*e.progress);
    }
  }
}

void BrokerLink::finish(const std::string& id, schema::Result result) {
  auto it = pending_.find(id);
  if (it == pending_.end()) return;  // given up on already
  if (result.status == "ok" && !result.labels.empty()) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (labels_ != result.labels) labels_ = result.labels;
  }
  JobDone done = std::move(it->second.done);
  pending_.erase(it);
  in_flight_.fetch_sub(1);
  done(std::move(result));
}

void BrokerLink::fail_connection(size_t index, const Status& why) {
  spdlog::warn("event=broker_unreachable connection={} reason=\"{}\"", index, why.message());
  for (auto it = pending_.begin(); it != pending_.end();) {
    if (it->second.connection != index) {
      ++it;
      continue;
    }
    JobDone done = std::move(it->second.done);
    const std::string id = it->first;
    it = pending_.erase(it);
    in_flight_.fetch_sub(1);
    done(local_error(id, why.code(), why.message()));
  }
}

void BrokerLink::expire_jobs() {
  const auto now = SteadyClock::now();
  std::vector<std::string> expired;
  for (const auto& [id, p] : pending_)
    if (now >= p.give_up) expired.push_back(id);
  for (const auto& id : expired) {
    const bool deadline = pending_[id].has_deadline;
    clients_[pending_[id].connection]->cancel({id}, Millis(200));
    finish(id, local_error(id, deadline ? "deadline_exceeded" : "timeout",
                           deadline ? "no result within the job's deadline"
                                    : "no result within the gateway's request_timeout"));
  }
}

void BrokerLink::refresh_status() {
  // Each connection takes its turn: the round trip is also the traffic that tells a connection
  // with long-running jobs that its broker is alive.
  const size_t c = next_status_++ % clients_.size();
  const Millis timeout = std::min(options_.status_interval, Millis(1000));
  auto body = clients_[c]->status(timeout);
  status_due_ = SteadyClock::now() + options_.status_interval;
  std::lock_guard<std::mutex> lock(mutex_);
  if (!body) {
    snapshot_.error = body.status().message();
    return;
  }
  auto json = client::msgpack_json(*body);
  if (!json) {
    snapshot_.error = json.status().message();
    return;
  }
  snapshot_.valid = true;
  snapshot_.status = std::move(*json);
  snapshot_.at = SteadyClock::now();
  snapshot_.error.clear();
}

}  // namespace ecgq::gateway
