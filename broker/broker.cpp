#include "broker/broker.hpp"

#include <spdlog/spdlog.h>
#include <sys/random.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <limits>
#include <set>
#include <stdexcept>

#include "protocol/curve.hpp"
#include "protocol/zmq_frames.hpp"

namespace ecgq::broker {

namespace {

// A job id no one can guess: 128 bits from the kernel's CSPRNG (getrandom), as 32 hex digits.
std::string random_job_id() {
  unsigned char bytes[16];
  size_t got = 0;
  while (got < sizeof bytes) {
    const ssize_t n = ::getrandom(bytes + got, sizeof bytes - got, 0);
    if (n < 0 && errno == EINTR) continue;
    // getrandom only fails on kernels older than 3.17; ids must never fall back to guessable.
    if (n < 0) throw std::runtime_error(std::string("getrandom failed: ") + std::strerror(errno));
    got += static_cast<size_t>(n);
  }
  char hex[33];
  for (size_t i = 0; i < sizeof bytes; ++i) std::snprintf(hex + 2 * i, 3, "%02x", bytes[i]);
  return std::string(hex, 32);
}

// The broker's key directories, from its settings.
KeyDirectories key_directories(const BrokerConfig& c) {
  return {c.client_keys, c.worker_keys, c.admin_keys};
}

// Loads the allow-lists, logging each file that was skipped and why.
Expected<std::shared_ptr<const KeyStore>> load_keys(const BrokerConfig& c) {
  auto keys = KeyStore::load(key_directories(c));
  if (!keys) return keys.status();
  for (const auto& why : keys->skipped()) spdlog::warn("event=key_skipped reason=\"{}\"", why);
  spdlog::info("event=keys_loaded keys={} client_keys={} worker_keys={} admin_keys={}",
               keys->size(), c.client_keys, c.worker_keys, c.admin_keys);
  return std::make_shared<const KeyStore>(std::move(*keys));
}

// The wall clock in unix milliseconds (the journal's times survive a restart; steady ones do not).
int64_t wall_now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// What a send is, for logs: its command and the job it concerns.
std::string describe(const mdp::Frames& frames, const std::string& job) {
  std::string what = "?";
  if (frames.size() >= 2 && frames[1].size() == 1) {
    const auto c = static_cast<uint8_t>(frames[1][0]);
    what = frames[0] == mdp::kWorkerHeader ? mdp::command_name(static_cast<mdp::WorkerCommand>(c))
                                           : mdp::command_name(static_cast<mdp::ClientCommand>(c));
  }
  return job.empty() ? what : what + " job " + job;
}

}  // namespace

Broker::Broker(BrokerConfig config)
    : config_(std::move(config)),
      context_(1),
      core_(config_, SteadyClock::now(), random_job_id, wall_now_ms()) {}

Status Broker::load_curve() {
  if (!config_.curve()) return Status::Ok();
  auto cert = curve::read_certificate(config_.curve_secret_cert);
  if (!cert) return cert.status().with_context("setting curve_secret_cert");
  if (cert->secret_key.empty())
    return Status(ErrorCode::BadCertificate,
                  config_.curve_secret_cert +
                      ": holds no secret-key (give the _secret file ecgq keygen wrote)",
                  "curve_secret_cert");
  ASSIGN_OR_RETURN(auto keys, load_keys(config_));
  curve_secret_key_ = cert->secret_key;
  // The ZAP endpoint must exist before the CURVE sockets bind.
  zap_ = std::make_unique<ZapHandler>(context_, std::move(keys));
  spdlog::info("event=curve_on server_key={}", curve::fingerprint(cert->public_key));
  return Status::Ok();
}

void Broker::reload_keys() {
  if (!zap_) {
    spdlog::info("event=reload_ignored reason=\"CURVE is off: no allow-lists to reload\"");
    return;
  }
  auto keys = load_keys(config_);
  if (!keys) {
    // The lists in force stay: a typo in a directory must not lock everyone out (or in).
    spdlog::error("event=reload_failed reason=\"{}\" action=kept_previous_lists",
                  keys.status().to_string());
    return;
  }
  zap_->set_keys(std::move(*keys));
}

Status Broker::open_journal() {
  if (config_.journal.empty()) return Status::Ok();
  JournalOptions options;
  options.path = config_.journal;
  options.max_bytes = config_.journal_max_bytes;
  options.sync_full = config_.journal_sync == "full";
  options.dead_letter_max = config_.dead_letter_max;
  auto journal = Journal::open(options);
  if (!journal) return journal.status();
  journal_ = std::move(*journal);
  auto jobs = journal_->load();
  if (!jobs) return jobs.status();
  auto letters = journal_->load_dead_letters();
  if (!letters) return letters.status();
  spdlog::info("event=journal_open path={} bytes={} jobs={} dead_letters={}", config_.journal,
               journal_->size_bytes(), jobs->size(), letters->size());
  handle(Restore{std::move(*jobs), std::move(*letters), wall_now_ms(), SteadyClock::now()});
  return Status::Ok();
}

Status Broker::bind() {
  const std::string endpoints[2] = {config_.bind, config_.worker_bind};
  for (int i = 0; i < 2; ++i) {
    if (endpoints[i].empty()) continue;
    try {
      sockets_[i] = zmq::socket_t(context_, zmq::socket_type::router);
      // Unroutable sends fail loudly (EHOSTUNREACH) instead of vanishing.
      sockets_[i].set(zmq::sockopt::router_mandatory, 1);
      // libzmq drops the connection of a peer whose frame exceeds ZMQ_MAXMSGSIZE, silently; the
      // socket allows twice max_message_bytes so that a body over the limit is received and
      // answered message_too_large (core_clients.cpp), and only one over twice the limit is not.
      const int64_t limit = config_.max_message_bytes;
      sockets_[i].set(zmq::sockopt::maxmsgsize,
                      limit > std::numeric_limits<int64_t>::max() / 2 ? -1 : 2 * limit);
      sockets_[i].set(zmq::sockopt::sndhwm, 100000);
      sockets_[i].set(zmq::sockopt::rcvhwm, 100000);
      sockets_[i].set(zmq::sockopt::linger, 2000);
      if (zap_) {
        sockets_[i].set(zmq::sockopt::curve_server, 1);
        sockets_[i].set(zmq::sockopt::curve_secretkey, curve_secret_key_);
        sockets_[i].set(zmq::sockopt::zap_domain, "ecgq");
        handshakes_[i] =
            std::make_unique<HandshakeLog>(context_, sockets_[i], i == 0 ? "bind" : "worker_bind");
      }
      sockets_[i].bind(endpoints[i]);
    } catch (const zmq::error_t& e) {
      return Status("bind_failed", "cannot bind " + endpoints[i] + ": " + e.what(),
                    i == 0 ? "bind" : "worker_bind");
    }
    spdlog::info("event=listening endpoint={} role={} security={}", endpoints[i],
                 i == 0 ? "clients+workers" : "workers", zap_ ? "curve" : "none");
    if (!zap_ && config_.allow_insecure)
      spdlog::warn(
          "event=insecure endpoint={} reason=\"allow_insecure: plaintext, no "
          "authentication; anyone who reaches this address can submit and serve\"",
          endpoints[i]);
  }
  return bind_metrics();
}

Status Broker::bind_metrics() {
  if (config_.metrics_bind.empty()) return Status::Ok();
  std::string host;
  int port = 0;
  if (!split_host_port(config_.metrics_bind, host, port))
    return Status(ErrorCode::BadConfig,
                  "metrics_bind is " + config_.metrics_bind + "; expected HOST:PORT",
                  "metrics_bind");
  metrics_ = std::make_unique<MetricsEndpoint>(host, port);
  Status started = metrics_->start();
  if (!started.ok())
    return Status(ErrorCode::BindFailed,
                  "cannot serve /metrics on " + config_.metrics_bind + ": " + started.message(),
                  "metrics_bind");
  return Status::Ok();
}

int Broker::run(const std::function<bool()>& stop_requested,
                const std::function<bool()>& reload_requested) {
  // Indexes: 0, 1 the ROUTER sockets; -1 the journal; -2 ZAP; -3, -4 the handshake logs; -5 the
  // large bodies copied off the loop.
  zmq_pollitem_t items[7];
  int n_items = 0;
  int index_of[7];
  for (int i = 0; i < 2; ++i) {
    if (!sockets_[i]) continue;
    items[n_items] = {sockets_[i].handle(), 0, ZMQ_POLLIN, 0};
    index_of[n_items++] = i;
    if (handshakes_[i]) {
      items[n_items] = {handshakes_[i]->socket().handle(), 0, ZMQ_POLLIN, 0};
      index_of[n_items++] = -3 - i;
    }
  }
  if (zap_) {
    items[n_items] = {zap_->socket().handle(), 0, ZMQ_POLLIN, 0};
    index_of[n_items++] = -2;
  }
  // The journal's commits wake the loop like a socket does.
  if (journal_) {
    items[n_items] = {nullptr, journal_->notify_fd(), ZMQ_POLLIN, 0};
    index_of[n_items++] = -1;
  }
  items[n_items] = {nullptr, intake_.notify_fd(), ZMQ_POLLIN, 0};
  index_of[n_items++] = -5;
  bool stop_sent = false;
  while (!core_.stopped()) {
    if (!stop_sent && stop_requested()) {
      stop_sent = true;
      handle(StopRequested{SteadyClock::now()});
      if (core_.stopped()) break;
    }
    if (reload_requested()) reload_keys();
    // A short timeout keeps deadlines, heartbeats and the stop flag responsive.
    const int rc = zmq_poll(items, n_items, 50);
    if (rc < 0 && zmq_errno() != EINTR) {
      spdlog::error("event=poll_failed error={}", zmq_strerror(zmq_errno()));
      return 1;
    }
    for (int i = 0; rc > 0 && i < n_items; ++i) {
      if ((items[i].revents & ZMQ_POLLIN) == 0) continue;
      if (index_of[i] == -1) {
        take_commits();
      } else if (index_of[i] == -2) {
        zap_->answer_pending();
      } else if (index_of[i] == -5) {
        take_intake();
      } else if (index_of[i] < -2) {
        handshakes_[-3 - index_of[i]]->log_pending();
      } else {
        receive(index_of[i]);
      }
    }
    handle(Tick{SteadyClock::now()});
    // Group commit per loop turn: everything this turn journaled goes to the writer at once.
    if (journal_) journal_->flush();
    if (metrics_ && metrics_->wanted()) metrics_->answer(core_.metrics_text());
  }
  return 0;
}

void Broker::receive(int socket_index) {
  // Bounded batch so timers still run under a flood.
  for (int n = 0; n < 1000; ++n) {
    std::optional<mdp::SplitMessage> message;
    std::string user_id;  // the sender's CURVE key, as the ZAP handler admitted it
    try {
      // The routing id is copied; the rest stays in libzmq's buffers until we know its size.
      message = mdp::recv_split(sockets_[socket_index], 1, zmq::recv_flags::dontwait,
                                zap_ ? &user_id : nullptr);
    } catch (const zmq::error_t& e) {
      spdlog::warn("event=recv_failed error={}", e.what());
      return;
    }
    if (!message || message->head.empty()) return;
    // The peer key: which socket, then the routing id (frame 0, which the core never sees).
    Received event;
    event.peer = std::string(1, static_cast<char>(socket_index)) + message->head[0];
    // Checked against the lists in force now: a key removed since its handshake has no roles.
    if (zap_) {
      event.roles = zap_->keys().roles(user_id);
      event.key = std::move(user_id);
    }
    size_t bytes = 0;
    for (const auto& part : message->tail) bytes += part.size();
    // A large body is copied off the loop; the peer's next messages queue behind it.
    if (bytes >= kOffLoopBytes || intake_.holds(event.peer)) {
      intake_.add(std::move(event), std::move(message->tail));
      continue;
    }
    event.frames = mdp::copy_frames(message->tail);
    event.now = SteadyClock::now();
    handle(Event(std::move(event)));
  }
}

void Broker::take_intake() {
  for (Received& event : intake_.ready(SteadyClock::now())) handle(Event(std::move(event)));
}

void Broker::handle(Event event) {
  if (journal_) {
    const Status health = journal_->health();
    core_.set_journal_usage({journal_->size_bytes(), health.ok(), health.message(),
                             journal_->transactions(), journal_->records_written()});
  }
  apply(core_.handle(std::move(event)));
}

void Broker::take_commits() {
  JournalCommits commits = journal_->take_commits();
  Committed event;
  // Accept and Dispatch records wait for an answer; Finish and Forget tickets are in neither map.
  const auto sort = [&](const std::vector<uint64_t>& tickets, std::vector<uint64_t>& accepts) {
    for (uint64_t ticket : tickets) {
      if (auto it = accepts_.find(ticket); it != accepts_.end()) {
        accepts.push_back(it->second);
        accepts_.erase(it);
      } else if (auto d = dispatches_.find(ticket); d != dispatches_.end()) {
        event.dispatched.push_back(d->second);
        dispatches_.erase(d);
      }
    }
  };
  sort(commits.durable, event.durable);
  sort(commits.failed, event.failed);
  if (event.durable.empty() && event.failed.empty() && event.dispatched.empty()) return;
  event.failure = journal_->health().message();
  event.now = SteadyClock::now();
  handle(std::move(event));
}

void Broker::apply(Actions actions) {
  // Failed sends go back to the core as one event per batch, whose actions are applied in turn:
  // a loop, not a recursion, and the core is never re-entered.
  while (!actions.empty()) {
    std::vector<Send> undelivered;
    std::set<std::string> failed;  // peers a send failed to: nothing more is tried for them
    for (auto& action : actions) {
      if (auto* d = std::get_if<Disconnect>(&action)) {
        send(d->peer, mdp::disconnect_frames(), "");
        continue;
      }
      if (auto* p = std::get_if<Persist>(&action)) {
        const JournalRecord::Kind kind = p->record.kind;
        const DispatchCommit dispatch{p->record.job.seq, p->record.job.attempts};
        const uint64_t ticket = journal_->append(std::move(p->record), false);
        if (kind == JournalRecord::Kind::Accept) accepts_[ticket] = dispatch.seq;
        if (kind == JournalRecord::Kind::Dispatch) dispatches_[ticket] = dispatch;
        continue;
      }
      auto& s = std::get<Send>(action);
      if (failed.count(s.peer) || !send(s.peer, s.frames, s.job)) {
        failed.insert(s.peer);
        undelivered.push_back(std::move(s));
      }
    }
    actions.clear();
    if (!undelivered.empty())
      actions = core_.handle(Undelivered{std::move(undelivered), SteadyClock::now()});
  }
}

bool Broker::send(const std::string& peer, const mdp::Frames& frames, const std::string& job) {
  zmq::socket_t& s = sockets_[static_cast<int>(peer[0])];
  try {
    zmq::message_t id(peer.data() + 1, peer.size() - 1);
    if (!s.send(id, zmq::send_flags::sndmore | zmq::send_flags::dontwait)) {
      spdlog::warn("event=send_dropped peer={} what=\"{}\" reason=hwm", peer_name(peer),
                   describe(frames, job));
      return false;
    }
    // The routing id is queued, so the rest of the message follows it.
    mdp::send_frames(s, frames, zmq::send_flags::dontwait);
  } catch (const zmq::error_t& e) {
    spdlog::info("event=peer_gone peer={} what=\"{}\" error=\"{}\"", peer_name(peer),
                 describe(frames, job), e.what());
    return false;
  }
  return true;
}

}  // namespace ecgq::broker
