// Client side of the broker: what a client may send, the one decode of an ecgq job, and when a
// job is refused, answered from the result cache or queued.
#include <spdlog/spdlog.h>

#include <algorithm>

#include "broker/core.hpp"
#include "broker/job_intake.hpp"
#include "broker/msgpack_fields.hpp"
#include "common/text.hpp"
#include "protocol/schema.hpp"

namespace ecgq::broker {

using mdp::ClientCommand;

namespace {
// Longest service name a client may use.
constexpr size_t kMaxServiceNameBytes = 128;
}  // namespace

void BrokerCore::on_client(const std::string& peer, mdp::Frames& frames) {
  auto msg = mdp::parse_client(std::move(frames));
  if (!msg) {
    spdlog::warn("event=bad_client_message peer={} reason=\"{}\"", peer_name(peer),
                 loggable(msg.status().message(), 256));
    // Answer when the message names a service, so a buggy client gets a reason, not silence.
    if (frames.size() >= 3) reply_error(peer, frames[2], "", msg.status());
    return;
  }
  if (msg->command != ClientCommand::Request) {
    const Status s(
        "bad_frame",
        std::string("clients may only send REQUEST, got ") + mdp::command_name(msg->command),
        "frames");
    spdlog::warn("event=bad_client_message peer={} reason=\"{}\"", peer_name(peer), s.message());
    reply_error(peer, msg->service, "", s);
    return;
  }
  if (msg->service.empty()) {
    reply_error(peer, msg->service, "",
                Status("bad_frame", "service name (frame 2) is empty", "frames"));
    return;
  }
  // Service names are printed in every log line of their jobs: short, one line, valid UTF-8.
  if (msg->service.size() > kMaxServiceNameBytes || !is_plain_text(msg->service)) {
    reply_error(peer, msg->service, "",
                Status("bad_frame",
                       "service name (frame 2) must be at most " +
                           std::to_string(kMaxServiceNameBytes) +
                           " bytes of printable UTF-8, got " +
                           std::to_string(msg->service.size()) + " bytes",
                       "frames"));
    return;
  }
  if (msg->service.rfind("mmi.", 0) == 0) {
    on_mmi(peer, *msg);
    return;
  }
  accept_job(peer, std::move(*msg));
}

void BrokerCore::accept_job(const std::string& peer, mdp::ClientMessage msg) {
  auto job = std::make_shared<JobRecord>();
  job->seq = next_seq_++;
  job->id = "#" + std::to_string(job->seq);
  job->client = peer;
  // With CURVE a job belongs to the key that sent it (ids, mmi.job and mmi.cancel are scoped).
  job->submitter = sender_.key;
  job->service = msg.service;
  job->ecgq_body = config_.is_ecgq(msg.service);
  job->received = now_;
  job->body = std::move(msg.body);
  ++counters_.received;

  size_t total = 0;
  for (const auto& f : job->body) total += f.size();
  if (total > static_cast<size_t>(config_.max_message_bytes)) {
    finish_with_error(*job, "message_too_large",
                      "body is " + std::to_string(total) + " bytes; max_message_bytes is " +
                          std::to_string(config_.max_message_bytes));
    return;
  }
  std::string meta;
  if (job->ecgq_body && !read_ecgq_job(*job, meta)) return;
  // A producer of any service may bound its wait for a worker (a misspelled service included).
  if (!job->ecgq_body && job->body.size() == 1)
    if (auto wait = wait_for_worker_of(job->body[0])) set_wait_for_worker(*job, *wait);
  if (answer_known_id(*job)) return;
  if (shutting_down_) {
    finish_with_error(*job, "shutting_down",
                      "the broker is shutting down; retry on another broker");
    return;
  }
  Service* existing = find_service(job->service);
  if (existing == nullptr && refuse_when_full(*job, nullptr)) return;
  Service& svc = existing != nullptr ? *existing : find_or_create_service(job->service);
  // A cached result costs nothing, so it is served even when the queue is full.
  if (answer_from_cache(*job, svc, meta)) return;
  if (refuse_when_full(*job, &svc)) return;
  spdlog::info("event=received job={} service={} client={} queued={}", job->id, job->service,
               peer_name(peer), svc.queue.size());
  // With a journal its Accept record is written first (journal_full refuses it).
  if (refuse_or_journal(*job)) return;
  queue_job(std::move(job), svc);
}

bool BrokerCore::read_ecgq_job(JobRecord& job, std::string& meta) {
  if (job.body.size() != 1) {
    reply_error(job.client, job.service, "",
                Status("bad_request",
                       "an " + job.service + " body must be exactly one msgpack frame, got " +
                           std::to_string(job.body.size()),
                       ""));
    return false;
  }
  // The one decode: validation, id, deadline and content key together (the key only when the
  // cache is on: it hashes every sample).
  auto in = read_job(job.body[0], cache_.enabled());
  if (!in) {
    // Name the job when its id is readable, so a pipelining client can match the error.
    const std::string id = id_of(job.body[0]);
    spdlog::info("event=rejected job={} service={} code={} field={} reason=\"{}\"",
                 loggable(id.empty() ? job.id : id), job.service, in.status().code(),
                 in.status().field(), loggable(in.status().message(), 256));
    reply_error(job.client, job.service, id, in.status());
    return false;
  }
  if (in->id.empty()) {
    job.assigned_id = new_job_id_();
    job.id = job.assigned_id;
  } else {
    job.id = std::move(in->id);
  }
  if (in->deadline_ms) job.deadline = job.received + std::chrono::milliseconds(*in->deadline_ms);
  if (in->wait_for_worker_ms) set_wait_for_worker(job, *in->wait_for_worker_ms);
  job.content_key = scoped_content_key(job.submitter, std::move(in->content_key));
  job.model_sha256 = std::move(in->model_sha256);
  meta = std::move(in->meta);
  return true;
}

void BrokerCore::set_wait_for_worker(JobRecord& job, int64_t wait_ms) const {
  // The producer's wait for a worker, within the broker's own bound.
  job.wait_for_worker = job.received + std::min(Millis(wait_ms), config_.service_wait);
}

std::string BrokerCore::why_full(const JobRecord& job, const Service* svc) const {
  if (svc == nullptr) return why_no_new_service("job");
  size_t queued = 0;
  for (const auto& [name, s] : services_) queued += s.queue.bytes();
  size_t bytes = 0;
  for (const auto& f : job.body) bytes += f.size();
  if (queued + bytes > static_cast<size_t>(config_.max_queued_bytes)) {
    return "queued jobs hold " + std::to_string(queued) + " bytes and this one " +
           std::to_string(bytes) + " more than max_queued_bytes=" +
           std::to_string(config_.max_queued_bytes) + " allows";
  }
  if (svc->queue.size() >= static_cast<size_t>(config_.max_queue))
    return "service queue holds max_queue=" + std::to_string(config_.max_queue);
  if (svc->queue.client_size(job.owner()) >= static_cast<size_t>(config_.max_queue_per_client)) {
    return "this client has max_queue_per_client=" +
           std::to_string(config_.max_queue_per_client) + " jobs queued";
  }
  return "";
}

std::string BrokerCore::why_no_new_service(const char* who) const {
  if (services_.size() < static_cast<size_t>(config_.max_services)) return "";
  return "the broker knows max_services=" + std::to_string(config_.max_services) +
         " services and this " + who + " names another";
}

bool BrokerCore::refuse_when_full(JobRecord& job, const Service* svc) {
  const std::string why = why_full(job, svc);
  if (why.empty()) return false;
  // A service that does not exist has no pace to measure: a second is as good a guess as any.
  const int64_t retry = svc != nullptr ? retry_after_ms(*svc) : 1000;
  ++counters_.errors["queue_full"];
  spdlog::info("event=queue_full job={} service={} retry_after_ms={}", job.id, job.service, retry);
  reply_client(job, ClientCommand::Final,
               schema::error_result(job.ecgq_body ? job.id : "", "queue_full", "queue full: " + why,
                                    "", retry));
  return true;
}

bool BrokerCore::answer_from_cache(JobRecord& job, const Service& svc, const std::string& meta) {
  if (job.content_key.empty()) return false;
  // Only when the workers agree on the model that would run the job: otherwise the result
  // depends on which worker gets it, and the cache cannot know that in advance.
  const auto model = service_model(svc);
  if (!model || (!job.model_sha256.empty() && job.model_sha256 != model->first)) return false;
  const schema::Result* hit = cache_.find({job.content_key, model->first, model->second});
  if (hit == nullptr) return false;
  schema::Result r = *hit;
  r.id = job.id;
  r.meta = meta;
  r.cached = true;
  r.cold_start = false;
  r.attempts = 0;
  r.timings = schema::Timings{};
  r.timings.total_ms = ms_between(job.received, now_);
  job.finished = true;
  metrics_.job_finished(job.service, "ok");
  spdlog::debug("event=cache_hit job={} service={} sha256={} precision={} worker={}", job.id,
                job.service, model->first, model->second, r.worker_id);
  reply_client(job, ClientCommand::Final, schema::encode_result(r));
  return true;
}

}  // namespace ecgq::broker
