#include "client/client.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdio>
#include <random>

#include "common/text.hpp"

namespace ecgq::client {

namespace {

// 128 random bits from the system's generator, as 32 hex digits: ids from two producers must
// never meet, since the broker runs a repeated id only once.
std::string random_prefix() {
  std::random_device rd;
  std::string hex;
  for (int i = 0; i < 4; ++i) {
    char buf[9];
    std::snprintf(buf, sizeof buf, "%08x", static_cast<unsigned>(rd()));
    hex += buf;
  }
  return hex;
}

schema::Result local_error(const std::string& id, const std::string& code,
                           const std::string& message) {
  schema::Result r;
  r.id = id;
  r.status = "error";
  r.error = schema::ErrorInfo{code, message, "", std::nullopt};
  r.attempts = 0;
  return r;
}

// Ok when `service` has a worker or is one of the broker's ecgq_services; else no_worker naming
// the services the broker knows.
Status service_verdict(const ext::BrokerStatus& status, const std::string& service) {
  std::string known;
  for (const auto& [name, info] : status.services) {
    if (info.workers.empty() && !info.ecgq) continue;
    if (name == service) return Status::Ok();
    known += (known.empty() ? "" : ", ") + name;
  }
  return Status(ErrorCode::NoWorker,
                "no worker serves service '" + loggable(service, 64) +
                    "' and the broker does not serve it (ecgq_services); known services: " +
                    (known.empty() ? std::string("none") : known) +
                    " (--wait-for-worker DURATION waits for a worker)",
                "service");
}

}  // namespace

Client::Client(ClientOptions options)
    : options_(std::move(options)), context_(1), last_traffic_(Clock::now()) {
  if (options_.id_prefix.empty()) options_.id_prefix = random_prefix();
  dealer_ = std::make_unique<Dealer>(context_, options_.broker,
                                     options_.curve ? &*options_.curve : nullptr);
}

Client::~Client() = default;

std::string Client::next_id() {
  return options_.id_prefix + "-" + std::to_string(++seq_);
}

Status Client::send(const mdp::Frames& frames) {
  const auto give_up = Clock::now() + options_.timeout;
  while (!dealer_->try_send(frames)) {
    if (Clock::now() >= give_up) {
      return Status(ErrorCode::BrokerUnreachable, "cannot send to broker " + options_.broker +
                                                      " for " + format_duration(options_.timeout));
    }
    dealer_->wait_writable(Millis(100));
  }
  return Status::Ok();
}

Expected<std::string> Client::submit(schema::Job job) {
  if (job.id.empty()) job.id = next_id();
  if (options_.wait_for_worker) job.wait_for_worker_ms = options_.wait_for_worker->count();
  std::string body = schema::encode_job(job);
  RETURN_IF_ERROR(submit_body(job.id, body));
  return job.id;
}

Status Client::submit_body(const std::string& id, const std::string& body,
                           const std::string& service) {
  if (static_cast<int64_t>(body.size()) > options_.max_message_bytes) {
    return Status(ErrorCode::MessageTooLarge, "job body is " + std::to_string(body.size()) +
                                                  " bytes; the limit is " +
                                                  std::to_string(options_.max_message_bytes));
  }
  if (outstanding_.count(id) != 0) {
    return Status(ErrorCode::BadRequest, "job id " + id + " is already outstanding", "id");
  }
  const std::string& svc = service.empty() ? options_.service : service;
  RETURN_IF_ERROR(check_service(svc));
  RETURN_IF_ERROR(send(mdp::client_frames(mdp::ClientCommand::Request, svc, {body})));
  const auto now = Clock::now();
  // Silence is measured from the moment there is something to wait for.
  if (outstanding_.empty()) last_traffic_ = now;
  outstanding_[id] = Pending{now, svc, body, false};
  if (options_.job_timeout) by_time_.emplace_back(now, id);
  spdlog::debug("event=submit job={} bytes={} service={}", id, body.size(), svc);
  return Status::Ok();
}

void Client::handle(mdp::Frames frames) {
  last_traffic_ = Clock::now();
  auto msg = mdp::parse_client(frames);
  if (!msg) {
    spdlog::warn("event=bad_reply error=\"{}\"", msg.status().to_string());
    return;
  }
  if (msg->command == mdp::ClientCommand::Request) {
    spdlog::warn("event=bad_reply error=\"broker sent a REQUEST\"");
    return;
  }
  if (msg->service == "mmi.job" && !take_overs_.empty() &&
      msg->command == mdp::ClientCommand::Final) {
    take_over(msg->body);
    return;
  }
  if (msg->service.rfind("mmi.", 0) == 0) {
    if (probing_ && msg->service == "mmi.service") {
      probing_ = false;  // the broker is alive: the jobs are waiting, not lost
      return;
    }
    if (msg->command == mdp::ClientCommand::Final) {
      mmi_replies_.emplace_back(msg->service, std::move(msg->body));
    }
    return;
  }
  const std::string body = msg->body.empty() ? std::string() : msg->body[0];
  if (msg->command == mdp::ClientCommand::Partial) {
    auto p = schema::decode_progress(body);
    if (!p) return;
    auto pending = outstanding_.find(p->id);
    if (pending == outstanding_.end()) return;  // late or foreign progress
    if (p->event == "accepted") pending->second.accepted = true;
    events_.push_back(JobEvent{p->id, *p, std::nullopt});
    return;
  }
  auto r = schema::decode_result(body);
  if (!r) {
    spdlog::warn("event=bad_result error=\"{}\"", r.status().to_string());
    return;
  }
  // A broker error about a body whose id it could not read carries id "": with one job
  // outstanding it can only be that one.
  if (r->id.empty() && outstanding_.size() == 1) r->id = outstanding_.begin()->first;
  auto it = outstanding_.find(r->id);
  if (it == outstanding_.end()) {
    ++unmatched_finals_;
    spdlog::debug("event=unmatched_final job={}", r->id);
    return;
  }
  outstanding_.erase(it);
  spdlog::debug("event=final job={} status={}", r->id, r->status);
  const std::string id = r->id;
  events_.push_back(JobEvent{id, std::nullopt, std::move(*r)});
}

std::optional<JobEvent> Client::expire_jobs() {
  if (!options_.job_timeout) return std::nullopt;
  const auto now = Clock::now();
  while (!by_time_.empty() && now - by_time_.front().first >= *options_.job_timeout) {
    const std::string id = by_time_.front().second;
    const auto sent = by_time_.front().first;
    by_time_.pop_front();
    auto it = outstanding_.find(id);
    if (it == outstanding_.end() || it->second.submitted != sent) continue;  // finished already
    outstanding_.erase(it);
    spdlog::debug("event=job_timeout job={}", id);
    return JobEvent{
        id, std::nullopt,
        local_error(id, "timeout", "no result within " + format_duration(*options_.job_timeout))};
  }
  return std::nullopt;
}

Status Client::silence_error() const {
  return Status(ErrorCode::BrokerUnreachable, "no reply from broker " + options_.broker + " for " +
                                                  format_duration(options_.timeout) + " with " +
                                                  std::to_string(outstanding_.size()) +
                                                  " job(s) outstanding");
}

Expected<std::optional<JobEvent>> Client::poll(Millis wait) {
  const auto until = Clock::now() + wait;
  while (true) {
    if (!events_.empty()) {
      JobEvent e = std::move(events_.front());
      events_.pop_front();
      return std::optional<JobEvent>(std::move(e));
    }
    if (auto e = expire_jobs()) return std::optional<JobEvent>(std::move(*e));
    const auto now = Clock::now();
    // Half the silence limit without a word: ask the broker whether it is still there. A live
    // broker answers, and jobs waiting in its queue keep waiting for their FINAL.
    if (!outstanding_.empty() && !probing_ && now - last_traffic_ >= options_.timeout / 2)
      probe_broker();
    if (!outstanding_.empty() && now - last_traffic_ >= options_.timeout) {
      Status s = silence_error();
      probing_ = false;
      outstanding_.clear();
      by_time_.clear();
      return s;
    }
    if (now >= until) return std::optional<JobEvent>();
    // Wake for the earliest of: the caller's wait, the silence limit, the next job timeout.
    auto next = until;
    if (!outstanding_.empty())
      next = std::min(next, last_traffic_ + (probing_ ? options_.timeout : options_.timeout / 2));
    if (!by_time_.empty()) next = std::min(next, by_time_.front().first + *options_.job_timeout);
    const auto slice = std::chrono::duration_cast<Millis>(next - now) + Millis(1);
    receive_one(std::max(slice, Millis(0)));
  }
}

void Client::receive_one(Millis wait) {
  if (auto frames = dealer_->receive(wait)) handle(std::move(*frames));
  const uint64_t handshakes = dealer_->handshakes();
  if (handshakes == handshakes_seen_) return;
  // The first handshake is the first connection; any later one is a new broker (or the same
  // one over a new link) that may not know this connection's jobs.
  handshakes_seen_ = handshakes;
  if (handshakes > 1) resync();
}

void Client::resync() {
  last_traffic_ = Clock::now();
  take_overs_.clear();
  std::vector<std::string> accepted;
  size_t resent = 0;
  for (const auto& [id, job] : outstanding_) {
    if (job.accepted) {
      accepted.push_back(id);
    } else {
      resend(id, job, "never_accepted");
      ++resent;
    }
  }
  spdlog::info("event=resync outstanding={} accepted={} resent={}", outstanding_.size(),
               accepted.size(), resent);
  for (size_t i = 0; i < accepted.size(); i += ext::kMaxJobQueryIds) {
    const auto end = accepted.begin() + static_cast<std::ptrdiff_t>(
                                            std::min(accepted.size(), i + ext::kMaxJobQueryIds));
    ext::JobQuery query{{accepted.begin() + static_cast<std::ptrdiff_t>(i), end}, true};
    if (send(mdp::client_frames(mdp::ClientCommand::Request, "mmi.job",
                                {ext::encode_job_query(query)}))
            .ok()) {
      take_overs_.push_back(std::move(query.ids));
    } else {
      for (const auto& id : query.ids) resend(id, outstanding_.at(id), "take_over_unsent");
    }
  }
}

void Client::resend(const std::string& id, const Pending& job, const char* reason) {
  Status sent = send(mdp::client_frames(mdp::ClientCommand::Request, job.service, {job.body}));
  spdlog::debug("event=resend job={} reason={} sent={}", id, reason, sent.ok());
}

void Client::take_over(const mdp::Frames& body) {
  const std::vector<std::string> asked = std::move(take_overs_.front());
  take_overs_.pop_front();
  auto reply = body.empty() ? Expected<ext::JobQueryReply>(Status(ErrorCode::BadResult, "empty"))
                            : ext::decode_job_reply(body[0]);
  if (!reply) {
    // A broker without mmi.job: sending again under the same ids is the only way left.
    spdlog::warn("event=take_over_failed error=\"{}\"", reply.status().to_string());
    for (const auto& id : asked)
      if (auto it = outstanding_.find(id); it != outstanding_.end())
        resend(id, it->second, "no_mmi_job");
    return;
  }
  for (ext::JobInfo& info : reply->jobs) {
    auto it = outstanding_.find(info.id);
    if (it == outstanding_.end()) continue;
    if (info.state == "done" || info.state == "failed") {
      auto result = schema::decode_result(info.result);
      if (!result) {
        resend(info.id, it->second, "undecodable_stored_result");
        continue;
      }
      outstanding_.erase(it);
      events_.push_back(JobEvent{info.id, std::nullopt, std::move(*result)});
    } else if (info.state == "unknown") {
      // Accepted, yet the broker does not know it (its journal was lost): run it again.
      resend(info.id, it->second, "unknown_after_reconnect");
    }
  }
}

void Client::probe_broker() {
  if (dealer_->try_send(
          mdp::client_frames(mdp::ClientCommand::Request, "mmi.service", {options_.service}))) {
    probing_ = true;
    spdlog::debug("event=probe_broker silent_ms={}",
                  std::chrono::duration_cast<Millis>(Clock::now() - last_traffic_).count());
  }
}

Status Client::check_service(const std::string& service) {
  if (!options_.check_service || options_.wait_for_worker) return Status::Ok();
  if (auto it = service_checks_.find(service); it != service_checks_.end()) return it->second;
  Status verdict;
  auto body = status(std::min(options_.timeout, Millis(2000)));
  auto decoded = body ? ext::decode_status(*body) : Expected<ext::BrokerStatus>(body.status());
  if (!decoded) {
    // A broker that does not answer now (or does not know mmi.status) is left to its own rule,
    // service_wait; a broker that is down fails the submit as before.
    spdlog::debug("event=service_unchecked service={} reason=\"{}\"", service,
                  decoded.status().message());
  } else {
    verdict = service_verdict(*decoded, service);
  }
  service_checks_.emplace(service, verdict);
  return verdict;
}

Expected<mdp::Frames> Client::mmi(const std::string& service, const mdp::Frames& body,
                                  Millis timeout) {
  // Drop stale replies to an earlier call of the same service that timed out.
  for (auto it = mmi_replies_.begin(); it != mmi_replies_.end();) {
    it = it->first == service ? mmi_replies_.erase(it) : std::next(it);
  }
  RETURN_IF_ERROR(send(mdp::client_frames(mdp::ClientCommand::Request, service, body)));
  const auto until = Clock::now() + timeout;
  while (true) {
    for (auto it = mmi_replies_.begin(); it != mmi_replies_.end(); ++it) {
      if (it->first == service) {
        mdp::Frames reply = std::move(it->second);
        mmi_replies_.erase(it);
        return reply;
      }
    }
    const auto now = Clock::now();
    if (now >= until) {
      return Status(ErrorCode::BrokerUnreachable, "no reply from broker " + options_.broker +
                                                      " to " + service + " within " +
                                                      format_duration(timeout));
    }
    receive_one(std::chrono::duration_cast<Millis>(until - now) + Millis(1));
  }
}

Expected<bool> Client::service_available(const std::string& service, Millis timeout) {
  ASSIGN_OR_RETURN(auto reply, mmi("mmi.service", {service}, timeout));
  const std::string code = reply.empty() ? std::string() : reply[0];
  if (code == ext::kServiceFound) return true;
  if (code == ext::kServiceNotFound) return false;
  return Status(ErrorCode::BadResult,
                "mmi.service answered \"" + code + "\" (expected 200 or 404)");
}

Expected<std::string> Client::status(Millis timeout) {
  ASSIGN_OR_RETURN(auto reply, mmi("mmi.status", {}, timeout));
  if (reply.empty()) return Status(ErrorCode::BadResult, "mmi.status answered with no body");
  if (reply[0] == ext::kServiceNotImplemented)
    return Status(ErrorCode::Unsupported, "the broker does not implement mmi.status");
  return reply[0];
}

Expected<CancelReply> Client::cancel(const std::vector<std::string>& ids, Millis timeout) {
  ext::CancelRequest request;
  request.all = ids.empty();
  request.ids = ids;
  ASSIGN_OR_RETURN(auto reply, mmi("mmi.cancel", {ext::encode_cancel_request(request)}, timeout));
  if (reply.empty()) return Status(ErrorCode::BadResult, "mmi.cancel answered with no body");
  if (reply[0] == ext::kServiceNotImplemented)
    return Status(ErrorCode::Unsupported, "the broker does not implement mmi.cancel");
  auto decoded = ext::decode_cancel_reply(reply[0]);
  if (!decoded)
    return Status(ErrorCode::BadResult, "mmi.cancel failed: " + decoded.status().to_string());
  return *decoded;
}

}  // namespace ecgq::client
