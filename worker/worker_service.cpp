#include "worker/worker_service.hpp"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <zmq.hpp>

#include "common/memory.hpp"
#include "common/text.hpp"
#include "common/time.hpp"
#include "protocol/admission.hpp"
#include "protocol/extensions.hpp"
#include "protocol/zmq_frames.hpp"

namespace ecgq {

namespace {

using Clock = std::chrono::steady_clock;

// A REQUEST is [header, command, client address, empty, body...]: the frames before the body are
// copied, the body stays in its ZeroMQ buffer.
constexpr size_t kRequestHeadFrames = 4;

std::string host_name() {
  char buf[256] = {0};
  if (::gethostname(buf, sizeof(buf) - 1) != 0) return "localhost";
  return buf;
}

// Decodes a REQUEST's body frame where ZeroMQ received it: the DecodedJob keeps the frame alive
// and reads the samples from it.
Expected<schema::DecodedJob> decode_request_body(std::vector<zmq::message_t>& body) {
  if (body.empty()) return schema::DecodedJob::decode(std::string());
  auto frame = std::make_shared<zmq::message_t>(std::move(body.front()));
  const std::string_view bytes(static_cast<const char*>(frame->data()), frame->size());
  return schema::DecodedJob::decode(bytes, std::move(frame));
}

}  // namespace

std::string default_worker_id() {
  return host_name() + "-" + std::to_string(::getpid());
}

WorkerService::WorkerService(WorkerServiceOptions options, LifecycleOptions lifecycle,
                             ModelLoader loader, CheckpointResolver resolver,
                             JobRunnerOptions runner)
    : options_(std::move(options)),
      runner_([&] {
        if (options_.worker_id.empty()) options_.worker_id = default_worker_id();
        runner.worker_id = options_.worker_id;
        return runner;
      }()),
      policy_(
          SleepPolicyOptions{options_.idle_timeout, options_.warm_on_start, options_.model_retry},
          Clock::now()) {
  lifecycle_ = std::make_unique<ModelLifecycle>(std::move(lifecycle), std::move(loader),
                                                std::move(resolver));
  if (::pipe2(wake_pipe_, O_NONBLOCK | O_CLOEXEC) != 0)
    throw std::runtime_error("cannot create the worker's wake-up pipe");
}

WorkerService::~WorkerService() {
  request_stop();
  {
    std::lock_guard<std::mutex> lock(queue_mutex_);
    compute_stop_ = true;
  }
  queue_cv_.notify_all();
  if (compute_thread_.joinable()) compute_thread_.join();
  socket_.reset();
  context_.reset();
  for (int fd : wake_pipe_)
    if (fd >= 0) ::close(fd);
}

WorkerState WorkerService::state() const {
  std::lock_guard<std::mutex> lock(queue_mutex_);
  return policy_.state();
}

void WorkerService::request_stop() {
  stop_requested_.store(true);
  if (wake_pipe_[1] >= 0) {
    const char c = 's';
    [[maybe_unused]] auto n = ::write(wake_pipe_[1], &c, 1);
  }
}

// ---------------------------------------------------------------- I/O thread

std::string WorkerService::ready_metadata() const {
  ext::ReadyMetadata m;
  m.capacity = options_.capacity;
  m.state = state();
  m.worker_id = options_.worker_id;
  m.model = lifecycle_->identity();
  m.pid = static_cast<int64_t>(::getpid());
  m.host = host_name();
  if (m.state == WorkerState::Failed) m.reason = lifecycle_->failure();
  return ext::encode_ready(m);
}

std::string WorkerService::status_frame() const {
  ext::WorkerStatus s;
  s.state = state();
  s.rss_bytes = resident_bytes();
  s.jobs_done = counters_.jobs_done.load();
  s.inflight = counters_.inflight.load();
  s.capacity = options_.capacity;
  // Outputs and labels are known only after the first load, so the broker learns them here.
  s.model = lifecycle_->identity();
  if (s.state == WorkerState::Failed) s.reason = lifecycle_->failure();
  return ext::encode_worker_status(s);
}

void WorkerService::send(const mdp::Frames& frames) {
  if (!socket_) return;
  try {
    if (!mdp::send_frames(*socket_, frames, zmq::send_flags::dontwait))
      spdlog::warn("event=send_dropped reason=would_block frames={}", frames.size());
  } catch (const zmq::error_t& e) {
    spdlog::warn("event=send_failed reason=\"{}\"", e.what());
  }
}

void WorkerService::connect_socket() {
  const uint64_t epoch = ++epoch_;
  socket_ = std::make_unique<zmq::socket_t>(*context_, zmq::socket_type::dealer);
  socket_->set(zmq::sockopt::linger, 0);
  if (options_.curve) curve::apply_client_keys(*socket_, *options_.curve);
  socket_->connect(options_.broker);
  // Counted before it is sent: whoever has seen this READY sees it counted.
  counters_.readies++;
  ready_sha256_ = lifecycle_->identity().sha256;
  send(mdp::ready_frames(options_.service, ready_metadata()));
  spdlog::info("event=ready broker={} service={} worker_id={} epoch={} state={} capacity={}",
               options_.broker, options_.service, options_.worker_id, epoch, state_name(state()),
               options_.capacity);
}

void WorkerService::close_socket() {
  if (!socket_) return;
  socket_.reset();
  const uint64_t old_epoch = epoch_.load();
  // Results of the old connection can no longer reach their clients; the broker re-dispatches.
  ++epoch_;
  std::deque<QueuedJob> dropped;
  {
    std::lock_guard<std::mutex> lock(queue_mutex_);
    auto keep = std::partition(queue_.begin(), queue_.end(),
                               [&](const QueuedJob& j) { return j.reply.epoch != old_epoch; });
    dropped.assign(std::make_move_iterator(keep), std::make_move_iterator(queue_.end()));
    queue_.erase(keep, queue_.end());
  }
  for (const auto& j : dropped) {
    counters_.inflight--;
    spdlog::warn("event=job_dropped job={} reason=connection_lost epoch={}", j.reply.id, old_epoch);
  }
}

bool WorkerService::reregister_if_renamed() {
  const std::string sha = lifecycle_->identity().sha256;
  if (ready_sha256_.empty() || sha.empty() || sha == ready_sha256_) return false;
  // The broker admits a model at READY: a new name is a new registration, checked as one.
  spdlog::info("event=model_renamed from={} to={} action=ready_again", ready_sha256_, sha);
  close_socket();
  connect_socket();
  return true;
}

void WorkerService::drain_wakeup() {
  char buf[64];
  while (::read(wake_pipe_[0], buf, sizeof(buf)) > 0) {
  }
}

void WorkerService::drain_outbox() {
  std::deque<Outgoing> items;
  {
    std::lock_guard<std::mutex> lock(outbox_mutex_);
    items.swap(outbox_);
  }
  for (auto& item : items) {
    if (item.status) {
      if (socket_ && !reregister_if_renamed()) send(mdp::heartbeat_frames(status_frame()));
      continue;
    }
    if (!socket_ || item.epoch != epoch_.load()) {
      spdlog::warn("event=result_dropped job={} reason=connection_gone epoch={} final={}",
                   item.job_id, item.epoch, item.final);
      continue;
    }
    send(item.frames);
  }
}

void WorkerService::handle_request(const mdp::WorkerMessage& message,
                                   std::vector<zmq::message_t>& body) {
  QueuedJob job{ReplyTo{message.reply_to, epoch_.load(), std::string()}, decode_request_body(body),
                Clock::now(), false};
  if (job.job) job.reply.id = job.job->id();
  const std::string id = job.reply.id;
  if (stop_requested_.load()) {
    spdlog::warn("event=job_refused job={} reason=shutting_down", id);
    send(mdp::worker_reply_frames(mdp::WorkerCommand::Final, message.reply_to,
                                  {schema::error_result(id, "shutting_down",
                                                        "worker " + options_.worker_id +
                                                            " is stopping; send the job again")}));
    return;
  }
  bool waited = false;
  size_t depth = 0;
  int64_t inflight = 0;
  {
    std::lock_guard<std::mutex> lock(queue_mutex_);
    waited = policy_.job_waits_for_model();
    job.waited = waited;
    queue_.push_back(std::move(job));
    depth = queue_.size();
    // Counted under the lock: a batch that holds `capacity` jobs knows no more can come.
    inflight = ++counters_.inflight;
  }
  queue_cv_.notify_all();
  spdlog::info("event=job_received job={} waiting_for_model={} queue={} inflight={}", id, waited,
               depth, inflight);
  if (inflight > options_.capacity)
    spdlog::warn("event=over_capacity job={} inflight={} capacity={}", id, inflight,
                 options_.capacity);
  if (waited && !id.empty()) {
    schema::Progress p{id, "waking", -1, options_.worker_id};
    send(mdp::worker_reply_frames(mdp::WorkerCommand::Partial, message.reply_to,
                                  {schema::encode_progress(p)}));
  }
}

void WorkerService::handle_broker_heartbeat(const mdp::WorkerMessage& message) {
  if (message.body.empty() || message.body[0].empty()) return;
  auto heartbeat = ext::decode_broker_heartbeat(message.body[0]);
  if (!heartbeat) {
    spdlog::warn("event=bad_heartbeat_status reason=\"{}\"", heartbeat.status().message());
    return;
  }
  if (!heartbeat->keep_warm) return;
  const bool keep = *heartbeat->keep_warm;
  bool changed = false;
  {
    std::lock_guard<std::mutex> lock(queue_mutex_);
    changed = policy_.on_keep_warm(keep);
  }
  if (changed) {
    spdlog::info("event=keep_warm value={}", keep);
    queue_cv_.notify_all();
  }
}

void WorkerService::handle_message(mdp::SplitMessage& message) {
  auto parsed = mdp::parse_worker(message.head);
  if (!parsed) {
    spdlog::warn("event=bad_message reason=\"{}\"", loggable(parsed.status().message(), 256));
    return;
  }
  switch (parsed->command) {
    case mdp::WorkerCommand::Request:
      handle_request(parsed.value(), message.tail);
      break;
    case mdp::WorkerCommand::Heartbeat:
      handle_broker_heartbeat(parsed.value());
      break;
    case mdp::WorkerCommand::Disconnect:
      break;  // run() reconnects
    default:
      spdlog::warn("event=unexpected_command command={}", mdp::command_name(parsed->command));
  }
}

Expected<bool> WorkerService::wait_for_input(const Link& link, bool stopping) {
  const auto now = Clock::now();
  const auto expiry =
      options_.heartbeat_interval * std::max<int64_t>(1, options_.heartbeat_liveness);
  // Heartbeat times matter only with a socket; without one (and stopping) only the wake-up
  // pipe can end the wait, so a stale heartbeat_at must not turn this into a busy loop.
  auto next = now + Millis(1000);
  if (socket_)
    next = std::min({next, link.heartbeat_at, link.last_inbound + expiry});
  else if (!stopping)
    next = std::min(next, link.reconnect_at);
  long timeout = static_cast<long>(std::chrono::duration_cast<Millis>(next - now).count());
  timeout = std::clamp(timeout, 0L, 1000L);

  zmq_pollitem_t items[2] = {{nullptr, wake_pipe_[0], ZMQ_POLLIN, 0},
                             {socket_ ? socket_->handle() : nullptr, 0, ZMQ_POLLIN, 0}};
  const int rc = zmq_poll(items, socket_ ? 2 : 1, timeout);
  if (rc < 0) {
    if (zmq_errno() == EINTR) return false;
    return Status("internal", std::string("zmq_poll failed: ") + zmq_strerror(zmq_errno()));
  }
  if (items[0].revents & ZMQ_POLLIN) drain_wakeup();
  return socket_ && (items[1].revents & ZMQ_POLLIN);
}

bool WorkerService::receive_messages(Link& link) {
  for (;;) {
    auto message = mdp::recv_split(*socket_, kRequestHeadFrames, zmq::recv_flags::dontwait);
    if (!message) return false;
    link.last_inbound = Clock::now();
    link.backoff = options_.reconnect_min;
    const mdp::Frames& head = message->head;
    if (head.size() >= 2 && head[0] == mdp::kWorkerHeader && head[1].size() == 1 &&
        static_cast<uint8_t>(head[1][0]) == static_cast<uint8_t>(mdp::WorkerCommand::Disconnect)) {
      spdlog::warn("event=broker_disconnect broker={}", options_.broker);
      if (head.size() >= 3 && !head[2].empty()) handle_refusal(head[2], link);
      return true;
    }
    handle_message(*message);
  }
}

void WorkerService::handle_refusal(const std::string& frame, Link& link) {
  auto refusal = ext::decode_refusal(frame);
  if (!refusal) {
    spdlog::warn("event=bad_refusal reason=\"{}\"", refusal.status().message());
    return;
  }
  spdlog::error("event=refused broker={} code={} message=\"{}\"", options_.broker, refusal->code,
                loggable(refusal->message, 512));
  if (refusal->code == "model_retired") {
    // A rollout replaced this model and our jobs are done: leave (exit 0).
    request_stop();
    return;
  }
  // The service serves another model (a rollout may admit ours) or the broker knows
  // max_services (one may be forgotten): try again later.
  link.backoff = std::max(options_.model_retry, options_.reconnect_min);
}

void WorkerService::tend_link(Link& link, bool reconnect_now, bool stopping) {
  const auto now = Clock::now();
  const auto expiry =
      options_.heartbeat_interval * std::max<int64_t>(1, options_.heartbeat_liveness);
  if (socket_ && now >= link.heartbeat_at) {
    send(mdp::heartbeat_frames(status_frame()));
    link.heartbeat_at = now + options_.heartbeat_interval;
  }
  if (socket_ && !reconnect_now && now - link.last_inbound > expiry) {
    spdlog::warn("event=broker_silent broker={} silent_ms={:.0f} liveness={}", options_.broker,
                 ms_between(link.last_inbound, now), options_.heartbeat_liveness);
    reconnect_now = true;
  }
  if (!reconnect_now) return;
  close_socket();
  if (stopping) return;
  link.reconnect_at = now + link.backoff;
  spdlog::info("event=reconnect_scheduled broker={} delay_ms={}", options_.broker,
               link.backoff.count());
  link.backoff = std::min(link.backoff * 2, options_.reconnect_max);
}

Status WorkerService::run() {
  context_ = std::make_unique<zmq::context_t>(1);
  // READY names the model, and a worker that cannot find its checkpoint registers as failed.
  if (Status found = lifecycle_->preflight(); !found.ok()) {
    if (options_.exit_on_load_failure) return found;
    std::lock_guard<std::mutex> lock(queue_mutex_);
    policy_.on_load_failed(Clock::now());
  }
  try {
    connect_socket();
  } catch (const zmq::error_t& e) {
    return Status("bad_config", "cannot connect to broker " + options_.broker + ": " + e.what(),
                  "broker");
  }
  compute_thread_ = std::thread([this] { compute_loop(); });

  const auto start = Clock::now();
  Link link{start + options_.heartbeat_interval, start, start, options_.reconnect_min};
  bool stopping = false;
  Status result = Status::Ok();
  for (;;) {
    if (stop_requested_.load() && !stopping) {
      stopping = true;
      spdlog::info("event=stopping inflight={}", counters_.inflight.load());
      {
        std::lock_guard<std::mutex> lock(queue_mutex_);
        compute_stop_ = true;
      }
      queue_cv_.notify_all();
    }
    drain_outbox();
    if (stopping && compute_done_.load()) {
      drain_outbox();
      if (socket_) {
        send(mdp::disconnect_frames());
        spdlog::info("event=disconnect_sent jobs_done={}", counters_.jobs_done.load());
      }
      break;
    }
    const auto now = Clock::now();
    if (!socket_ && !stopping && now >= link.reconnect_at) {
      try {
        connect_socket();
      } catch (const zmq::error_t& e) {
        spdlog::error("event=connect_failed broker={} reason=\"{}\"", options_.broker, e.what());
      }
      link.last_inbound = now;
      link.heartbeat_at = now + options_.heartbeat_interval;
    }
    auto input = wait_for_input(link, stopping);
    if (!input) {
      result = input.status();
      break;
    }
    const bool reconnect_now = input.value() && receive_messages(link);
    drain_outbox();
    tend_link(link, reconnect_now, stopping);
  }
  if (compute_thread_.joinable()) compute_thread_.join();
  socket_.reset();
  if (result.ok() && load_failure_exit_.load())
    return Status("model_error",
                  "the model could not be loaded (exit_on_load_failure): " + lifecycle_->failure(),
                  "checkpoint");
  return result;
}

}  // namespace ecgq
