#include "broker/broker.hpp"

#include <spdlog/spdlog.h>

#include <chrono>
#include <cstdio>
#include <zmq_addon.hpp>

#include "broker/msgpack_fields.hpp"
#include "broker/content_key.hpp"
#include "protocol/schema.hpp"
#include "protocol/schema_msgpack.hpp"

namespace ecgq::broker {

namespace {

using mdp::ClientCommand;

}  // namespace

std::string peer_name(const std::string& key) {
  std::string s = key.empty() ? "?" : std::to_string(static_cast<int>(key[0])) + ":";
  char hex[3];
  for (size_t i = 1; i < key.size(); ++i) {
    std::snprintf(hex, sizeof hex, "%02x", static_cast<unsigned char>(key[i]));
    s += hex;
  }
  return s;
}

Broker::Broker(BrokerConfig config)
    : config_(std::move(config)),
      context_(1),
      cache_(ResultCacheLimits{config_.result_cache_entries, config_.result_cache_bytes,
                               config_.result_cache_ttl}) {
  started_ = Clock::now();
  heartbeat_at_ = started_ + config_.heartbeat_interval;
  expire_at_ = started_;
  const auto wall = std::chrono::system_clock::now().time_since_epoch();
  char prefix[32];
  std::snprintf(prefix, sizeof prefix, "b%llx-",
                static_cast<unsigned long long>(
                    std::chrono::duration_cast<std::chrono::milliseconds>(wall).count()));
  id_prefix_ = prefix;
}

Status Broker::bind() {
  const std::string endpoints[2] = {config_.bind, config_.worker_bind};
  for (int i = 0; i < 2; ++i) {
    if (endpoints[i].empty()) continue;
    try {
      sockets_[i] = zmq::socket_t(context_, zmq::socket_type::router);
      // Unroutable sends fail loudly (EHOSTUNREACH) instead of vanishing.
      sockets_[i].set(zmq::sockopt::router_mandatory, 1);
      // Over-long frames make libzmq drop the connection; we also check totals ourselves.
      sockets_[i].set(zmq::sockopt::maxmsgsize, config_.max_message_bytes);
      sockets_[i].set(zmq::sockopt::sndhwm, 100000);
      sockets_[i].set(zmq::sockopt::rcvhwm, 100000);
      sockets_[i].set(zmq::sockopt::linger, 2000);
      sockets_[i].bind(endpoints[i]);
    } catch (const zmq::error_t& e) {
      return Status("bind_failed", "cannot bind " + endpoints[i] + ": " + e.what(),
                    i == 0 ? "bind" : "worker_bind");
    }
    spdlog::info("event=listening endpoint={} role={}", endpoints[i],
                 i == 0 ? "clients+workers" : "workers");
  }
  return Status::Ok();
}

int Broker::run(const std::function<bool()>& stop_requested) {
  zmq_pollitem_t items[2];
  int n_items = 0;
  int index_of[2];
  for (int i = 0; i < 2; ++i) {
    if (!sockets_[i]) continue;
    items[n_items] = {sockets_[i].handle(), 0, ZMQ_POLLIN, 0};
    index_of[n_items++] = i;
  }
  while (true) {
    if (!shutting_down_ && stop_requested()) begin_shutdown();
    if (shutting_down_ && (drained() || Clock::now() >= shutdown_deadline_)) {
      finish_shutdown();
      return 0;
    }
    // A short timeout keeps deadlines, heartbeats and the stop flag responsive.
    const int rc = zmq_poll(items, n_items, 50);
    if (rc < 0 && zmq_errno() != EINTR) {
      spdlog::error("event=poll_failed error={}", zmq_strerror(zmq_errno()));
      return 1;
    }
    for (int i = 0; rc > 0 && i < n_items; ++i)
      if (items[i].revents & ZMQ_POLLIN) receive(index_of[i]);
    on_timer();
  }
}

void Broker::receive(int socket_index) {
  // Bounded batch so timers still run under a flood.
  for (int n = 0; n < 1000; ++n) {
    std::vector<zmq::message_t> parts;
    std::optional<size_t> got;
    try {
      got = zmq::recv_multipart(sockets_[socket_index], std::back_inserter(parts),
                                zmq::recv_flags::dontwait);
    } catch (const zmq::error_t& e) {
      spdlog::warn("event=recv_failed error={}", e.what());
      return;
    }
    if (!got || parts.empty()) return;
    const std::string peer = std::string(1, static_cast<char>(socket_index)) + parts[0].to_string();
    mdp::Frames frames;
    frames.reserve(parts.size() - 1);
    for (size_t i = 1; i < parts.size(); ++i) frames.push_back(parts[i].to_string());
    auto kind = mdp::peer_kind(frames);
    if (!kind) {
      spdlog::warn("event=dropped peer={} reason=\"{}\"", peer_name(peer), kind.status().message());
      continue;
    }
    if (*kind == mdp::PeerKind::Client) {
      handle_client(peer, frames);
    } else {
      handle_worker(peer, frames);
    }
  }
}

bool Broker::send(const std::string& peer, mdp::Frames frames, const std::string& what) {
  zmq::socket_t& s = sockets_[static_cast<int>(peer[0])];
  try {
    zmq::message_t id(peer.data() + 1, peer.size() - 1);
    if (!s.send(id, zmq::send_flags::sndmore | zmq::send_flags::dontwait)) {
      spdlog::warn("event=send_dropped peer={} what=\"{}\" reason=hwm", peer_name(peer), what);
      return false;
    }
    for (size_t i = 0; i < frames.size(); ++i) {
      const auto more = i + 1 < frames.size() ? zmq::send_flags::sndmore : zmq::send_flags::none;
      s.send(zmq::message_t(frames[i].data(), frames[i].size()), more | zmq::send_flags::dontwait);
    }
  } catch (const zmq::error_t& e) {
    spdlog::info("event=peer_gone peer={} what=\"{}\" error=\"{}\"", peer_name(peer), what,
                 e.what());
    return false;
  }
  return true;
}

void Broker::handle_client(const std::string& peer, const mdp::Frames& frames) {
  auto msg = mdp::parse_client(frames);
  if (!msg) {
    spdlog::warn("event=bad_client_message peer={} reason=\"{}\"", peer_name(peer),
                 msg.status().message());
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
  if (msg->service.rfind("mmi.", 0) == 0) {
    handle_mmi(peer, *msg);
    return;
  }
  accept_job(peer, std::move(*msg));
}

void Broker::accept_job(const std::string& peer, mdp::ClientMessage msg) {
  auto job = std::make_shared<Job>();
  job->seq = next_seq_++;
  job->id = "#" + std::to_string(job->seq);
  job->client = peer;
  job->service = msg.service;
  job->ecgq = config_.is_ecgq(msg.service);
  job->received = Clock::now();
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
  if (job->ecgq) {
    if (job->body.size() != 1) {
      reply_error(peer, job->service, "",
                  Status("bad_request",
                         "an " + job->service + " body must be exactly one msgpack frame, got " +
                             std::to_string(job->body.size()),
                         ""));
      return;
    }
    auto env = schema::peek_job(job->body[0]);
    if (!env) {
      // Name the job when its id is readable, so a pipelining client can match the error.
      const std::string id = id_of(job->body[0]);
      spdlog::info("event=rejected job={} service={} code={} field={} reason=\"{}\"",
                   id.empty() ? job->id : id, job->service, env.status().code(),
                   env.status().field(), env.status().message());
      reply_error(peer, job->service, id, env.status());
      return;
    }
    if (env->id.empty()) {
      job->assigned_id = id_prefix_ + std::to_string(job->seq);
      job->id = job->assigned_id;
    } else {
      job->id = env->id;
    }
    if (env->deadline_ms)
      job->deadline = job->received + std::chrono::milliseconds(*env->deadline_ms);
    // Once per job: the lookup below and the insert at its FINAL both use it.
    if (cache_.enabled()) {
      auto key = schema::job_content_key(job->body[0]);
      if (key) job->content_key = std::move(*key);
    }
  }
  if (shutting_down_) {
    finish_with_error(*job, "shutting_down",
                      "the broker is shutting down; retry on another broker");
    return;
  }
  Service& svc = service(job->service);
  // A cached result costs nothing, so it is served even when the queue is full.
  if (answer_from_cache(*job, svc)) return;
  const bool service_full = svc.queue.size() >= static_cast<size_t>(config_.max_queue);
  if (service_full ||
      svc.queue.client_size(peer) >= static_cast<size_t>(config_.max_queue_per_client)) {
    const int64_t retry = retry_after_ms(svc);
    const std::string why =
        service_full ? "service queue holds max_queue=" + std::to_string(config_.max_queue)
                     : "this client has max_queue_per_client=" +
                           std::to_string(config_.max_queue_per_client) + " jobs queued";
    ++counters_.errors["queue_full"];
    spdlog::info("event=queue_full job={} service={} retry_after_ms={}", job->id, job->service,
                 retry);
    reply_client(*job, ClientCommand::Final,
                 schema::error_result(job->ecgq ? job->id : "", "queue_full", "queue full: " + why,
                                      "", retry));
    return;
  }
  svc.queue.push_back(job);
  spdlog::info("event=received job={} service={} client={} queued={}", job->id, job->service,
               peer_name(peer), svc.queue.size());
  dispatch(svc);
  if (job->ecgq && job->worker.empty() && !job->finished) {
    send_progress(*job, "queued", static_cast<int64_t>(svc.queue.position(*job)), "");
  }
}

bool Broker::answer_from_cache(Job& job, const Service& svc) {
  if (job.content_key.empty()) return false;
  // Only when the workers agree on the model that would run the job: otherwise the result
  // depends on which worker gets it, and the cache cannot know that in advance.
  const auto model = service_model(svc);
  if (!model) return false;
  const schema::Result* hit = cache_.find({job.content_key, model->first, model->second});
  if (hit == nullptr) return false;
  schema::Result r = *hit;
  r.id = job.id;
  auto own = schema::detail::decode_job_body(job.body[0], /*copy_samples=*/false);
  r.meta = own ? own->meta : std::string();
  r.cached = true;
  r.cold_start = false;
  r.attempts = 0;
  r.timings = schema::Timings{};
  r.timings.total_ms =
      std::chrono::duration<double, std::milli>(Clock::now() - job.received).count();
  job.finished = true;
  spdlog::debug("event=cache_hit job={} service={} sha256={} precision={} worker={}", job.id,
                job.service, model->first, model->second, r.worker_id);
  reply_client(job, ClientCommand::Final, schema::encode_result(r));
  return true;
}

void Broker::reply_client(const Job& job, ClientCommand command, std::string body) {
  mdp::Frames body_frames;
  body_frames.push_back(std::move(body));
  if (!send(job.client, mdp::client_frames(command, job.service, std::move(body_frames)),
            std::string(mdp::command_name(command)) + " job " + job.id)) {
    spdlog::info("event=client_gone job={} service={} dropped={}", job.id, job.service,
                 mdp::command_name(command));
  }
}

void Broker::reply_error(const std::string& peer, const std::string& service, const std::string& id,
                         const Status& error, std::optional<int64_t> retry_after_ms) {
  ++counters_.errors[error.code()];
  mdp::Frames body;
  body.push_back(
      schema::error_result(id, error.code(), error.message(), error.field(), retry_after_ms));
  send(peer, mdp::client_frames(ClientCommand::Final, service, std::move(body)),
       "error " + error.code());
}

void Broker::finish_with_error(Job& job, const std::string& code, const std::string& message,
                               const std::string& field) {
  job.finished = true;
  ++counters_.errors[code];
  spdlog::info("event=failed job={} service={} code={} attempts={} reason=\"{}\"", job.id,
               job.service, code, job.attempts, message);
  reply_client(job, ClientCommand::Final,
               schema::error_result(job.ecgq ? job.id : "", code, message, field, std::nullopt,
                                    job.attempts));
}

void Broker::send_progress(const Job& job, const std::string& event, int64_t position,
                           const std::string& worker_id) {
  schema::Progress p;
  p.id = job.id;
  p.event = event;
  p.position = position;
  p.worker_id = worker_id;
  reply_client(job, ClientCommand::Partial, schema::encode_progress(p));
}

void Broker::begin_shutdown() {
  shutting_down_ = true;
  shutdown_deadline_ = Clock::now() + config_.shutdown_grace;
  size_t queued = 0;
  for (auto& [name, svc] : services_) {
    for (auto& job : svc.queue.remove_if([](const Job&) { return true; })) {
      finish_with_error(*job, "shutting_down", "the broker is shutting down; the job was not run");
      ++queued;
    }
  }
  size_t in_flight = 0;
  for (const auto& [key, w] : workers_) in_flight += w.in_flight.size();
  spdlog::info("event=shutting_down queued_answered={} in_flight={} grace_ms={}", queued, in_flight,
               config_.shutdown_grace.count());
}

bool Broker::drained() const {
  for (const auto& [key, w] : workers_)
    if (!w.in_flight.empty()) return false;
  return true;
}

void Broker::finish_shutdown() {
  for (auto& [key, w] : workers_) {
    for (auto& [token, job] : w.in_flight)
      finish_with_error(*job, "shutting_down",
                        "the broker shut down before the worker answered (shutdown_grace passed)");
    w.in_flight.clear();
    send(key, mdp::disconnect_frames(), "DISCONNECT");
  }
  spdlog::info("event=stopped workers_disconnected={}", workers_.size());
  workers_.clear();
}

Service& Broker::service(const std::string& name) {
  auto it = services_.find(name);
  if (it != services_.end()) return it->second;
  Service& s = services_[name];
  s.name = name;
  s.ecgq = config_.is_ecgq(name);
  return s;
}

int64_t Broker::retry_after_ms(const Service& svc) const {
  int64_t slots = 0;
  for (const auto& key : svc.workers) slots += workers_.at(key).capacity;
  const double per_job = svc.service_ms > 0 ? svc.service_ms : 1000.0;
  const double backlog = static_cast<double>(svc.queue.size()) + static_cast<double>(svc.in_flight);
  const double estimate = per_job * backlog / static_cast<double>(std::max<int64_t>(slots, 1));
  return std::max<int64_t>(100, static_cast<int64_t>(estimate));
}

}  // namespace ecgq::broker
