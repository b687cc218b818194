// Raw RFC 18 peers for broker tests, written from the RFC frame tables (not from the broker's
// code): a DEALER client driven from the test thread, a DEALER worker that runs in its own thread
// so its heartbeats never depend on what the test is waiting for, and the broker as a process.
#pragma once

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <msgpack.hpp>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>
#include <zmq.hpp>

#include "protocol/curve.hpp"
#include "protocol/schema.hpp"
#include "protocol/zmq_frames.hpp"
#include "tests/support/process.hpp"

namespace ecgq::test {

using Frames = std::vector<std::string>;
using namespace std::chrono_literals;

inline const std::string kC = "MDPC02";
inline const std::string kW = "MDPW02";
inline std::string byte(int b) {
  return std::string(1, static_cast<char>(b));
}

// One shared context per test binary.
inline zmq::context_t& ctx() {
  static zmq::context_t c(1);
  return c;
}

// Sends one multipart message (blocking).
using mdp::send_frames;

// The next whole message, or nullopt after `timeout`.
inline std::optional<Frames> recv_frames(zmq::socket_t& s, std::chrono::milliseconds timeout) {
  zmq::pollitem_t item{s.handle(), 0, ZMQ_POLLIN, 0};
  if (zmq::poll(&item, 1, timeout) <= 0) return std::nullopt;
  return mdp::recv_frames(s);
}

// A strict RFC 18 client on a DEALER socket.
class RawClient {
 public:
  // With `keys` the client is a CURVE client of the broker.
  explicit RawClient(const std::string& endpoint, const curve::ClientKeys* keys = nullptr)
      : s_(ctx(), zmq::socket_type::dealer) {
    s_.set(zmq::sockopt::linger, 0);
    if (keys != nullptr) curve::apply_client_keys(s_, *keys);
    s_.connect(endpoint);
  }
  // Sends REQUEST: MDPC02, 0x01, service, body...
  void request(const std::string& service, const Frames& body) {
    Frames f{kC, byte(0x01), service};
    f.insert(f.end(), body.begin(), body.end());
    ASSERT_TRUE(send_frames(s_, f));
  }
  // Sends arbitrary frames (malformed-message tests).
  void raw(const Frames& f) { ASSERT_TRUE(send_frames(s_, f)); }
  // The next message, or nullopt after `timeout`.
  std::optional<Frames> recv(std::chrono::milliseconds timeout = 5s) {
    return recv_frames(s_, timeout);
  }
  // The next FINAL, skipping PARTIALs (collected into `partials` when given).
  std::optional<Frames> final(std::chrono::milliseconds timeout = 5s,
                              std::vector<Frames>* partials = nullptr) {
    const auto until = std::chrono::steady_clock::now() + timeout;
    while (true) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          until - std::chrono::steady_clock::now());
      if (left.count() <= 0) return std::nullopt;
      auto m = recv(left);
      if (!m) return std::nullopt;
      if (m->size() >= 2 && (*m)[1] == byte(0x03)) return m;
      if (partials) partials->push_back(*m);
    }
  }
  // Request/reply for management services: the body of the FINAL.
  std::optional<std::string> mmi(const std::string& service, const std::string& body) {
    request(service, {body});
    auto m = final();
    if (!m || m->size() < 4) return std::nullopt;
    return (*m)[3];
  }

 private:
  zmq::socket_t s_;
};

// A worker on a DEALER socket, run by its own thread: it sends READY, heartbeats every
// `heartbeat` unless silenced, and hands every other received message to the test.
class RawWorker {
 public:
  // With `keys` the worker is a CURVE client of the broker.
  RawWorker(const std::string& endpoint, const std::string& service, std::string metadata = {},
            std::chrono::milliseconds heartbeat = 100ms,
            std::optional<curve::ClientKeys> keys = std::nullopt)
      : endpoint_(endpoint),
        service_(service),
        metadata_(std::move(metadata)),
        hb_(heartbeat),
        keys_(std::move(keys)) {
    thread_ = std::thread([this] { loop(); });
  }
  ~RawWorker() {
    stop_ = true;
    thread_.join();
  }
  RawWorker(const RawWorker&) = delete;
  RawWorker& operator=(const RawWorker&) = delete;

  // Stops heartbeats and stops sending anything (a hung or dead worker).
  void go_silent() { silent_ = true; }
  // Replies to every REQUEST at once (the REQUEST is still recorded): with an ok result for the
  // job's id, or with the request body itself when `echo`.
  void auto_final(bool on, bool echo = false) {
    echo_ = echo;
    auto_ = on;
  }
  // Queues frames for sending from the worker thread.
  void send(Frames f) {
    std::lock_guard<std::mutex> l(mu_);
    outbox_.push_back(std::move(f));
  }
  // Sends FINAL (MDPW02, 0x04, token, "", body...).
  void final(const std::string& token, const Frames& body) {
    Frames f{kW, byte(0x04), token, ""};
    f.insert(f.end(), body.begin(), body.end());
    send(std::move(f));
  }
  // Sends PARTIAL (MDPW02, 0x03, token, "", body...).
  void partial(const std::string& token, const Frames& body) {
    Frames f{kW, byte(0x03), token, ""};
    f.insert(f.end(), body.begin(), body.end());
    send(std::move(f));
  }
  // The next non-heartbeat message from the broker, or nullopt after `timeout`.
  std::optional<Frames> next(std::chrono::milliseconds timeout = 5s) {
    std::unique_lock<std::mutex> l(mu_);
    if (!cv_.wait_for(l, timeout, [&] { return !inbox_.empty(); })) return std::nullopt;
    Frames f = std::move(inbox_.front());
    inbox_.pop_front();
    return f;
  }
  // Every REQUEST received so far (auto_final mode keeps them here).
  std::vector<Frames> requests() {
    std::lock_guard<std::mutex> l(mu_);
    return requests_;
  }
  // Heartbeats received from the broker, in order.
  std::vector<Frames> heartbeats() {
    std::lock_guard<std::mutex> l(mu_);
    return heartbeats_;
  }

 private:
  void loop() {
    zmq::socket_t s(ctx(), zmq::socket_type::dealer);
    s.set(zmq::sockopt::linger, 0);
    if (keys_) curve::apply_client_keys(s, *keys_);
    s.connect(endpoint_);
    Frames ready{kW, byte(0x01), service_};
    if (!metadata_.empty()) ready.push_back(metadata_);
    send_frames(s, ready);
    auto beat_at = std::chrono::steady_clock::now() + hb_;
    while (!stop_) {
      auto m = recv_frames(s, 5ms);
      if (m && !silent_) {
        std::lock_guard<std::mutex> l(mu_);
        if (m->size() >= 2 && (*m)[1] == byte(0x05)) {
          heartbeats_.push_back(*m);
        } else if (m->size() >= 2 && (*m)[1] == byte(0x02)) {
          requests_.push_back(*m);
          if (auto_) {
            Frames f{kW, byte(0x04), (*m)[2], ""};
            if (echo_) {
              f.insert(f.end(), m->begin() + 4, m->end());
            } else {
              auto job = m->size() == 5 ? schema::decode_job((*m)[4]) : schema::Job{};
              schema::Result r;
              r.id = job.ok() ? job->id : "";
              f.push_back(schema::encode_result(r));
            }
            outbox_.push_back(std::move(f));
          } else {
            inbox_.push_back(*m);
          }
        } else {
          inbox_.push_back(*m);
        }
        cv_.notify_all();
      }
      if (silent_) continue;
      std::deque<Frames> out;
      {
        std::lock_guard<std::mutex> l(mu_);
        out.swap(outbox_);
      }
      for (auto& f : out) send_frames(s, f);
      if (std::chrono::steady_clock::now() >= beat_at) {
        send_frames(s, {kW, byte(0x05)});
        beat_at = std::chrono::steady_clock::now() + hb_;
      }
    }
  }

  std::string endpoint_, service_, metadata_;
  std::chrono::milliseconds hb_;
  std::optional<curve::ClientKeys> keys_;
  std::atomic<bool> stop_{false}, silent_{false}, auto_{false}, echo_{false};
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Frames> inbox_, outbox_;
  std::vector<Frames> requests_, heartbeats_;
  std::thread thread_;
};

// ecgq-broker as a child process on a fresh 127.0.0.1 port with fast heartbeats.
class BrokerProcess {
 public:
  // With CURVE in `extra`, `probe_keys` are the keys the readiness probe connects with.
  explicit BrokerProcess(std::vector<std::string> extra = {}, const std::string& liveness = "10",
                         const curve::ClientKeys* probe_keys = nullptr)
      : endpoint(free_endpoint()) {
    std::vector<std::string> argv{bin("ecgq-broker"),
                                  "--bind",
                                  endpoint,
                                  "--heartbeat-interval",
                                  "100ms",
                                  "--heartbeat-liveness",
                                  liveness,
                                  "--log-level",
                                  "debug"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    proc = std::make_unique<ChildProcess>(argv);
    // Ready once it answers MMI.
    RawClient probe(endpoint, probe_keys);
    probe.request("mmi.service", {"x"});
    ready = probe.final(10s).has_value();
  }
  std::string endpoint;
  std::unique_ptr<ChildProcess> proc;
  bool ready = false;
};

// A valid ecgq job body: 1 lead, 4 f32 samples.
inline std::string job_body(const std::string& id, std::optional<int64_t> deadline_ms = {}) {
  schema::Job j;
  j.id = id;
  j.ecg.dtype = "f32";
  j.ecg.shape = {1, 4};
  j.ecg.data = std::string(16, '\0');
  j.fs = 500;
  j.leads = {"I"};
  j.deadline_ms = deadline_ms;
  return schema::encode_job(j);
}

// The decoded job a worker received in REQUEST frames (body is frame 4).
inline schema::Job job_of(const Frames& request) {
  auto j = schema::decode_job(request.at(4));
  EXPECT_TRUE(j.ok()) << j.status().to_string();
  return j.ok() ? *j : schema::Job{};
}

// The decoded result of a FINAL to a client (body is frame 3).
inline schema::Result result_of(const Frames& final) {
  auto r = schema::decode_result(final.at(3));
  EXPECT_TRUE(r.ok()) << r.status().to_string();
  return r.ok() ? *r : schema::Result{};
}

// The error code of a FINAL's result, "" for ok.
inline std::string code_of(const std::optional<Frames>& final) {
  if (!final) return "<no reply>";
  auto r = result_of(*final);
  return r.error ? r.error->code : "";
}

// A minimal successful result body for job `id`.
inline std::string ok_result(const std::string& id) {
  schema::Result r;
  r.id = id;
  return schema::encode_result(r);
}

// A msgpack map from string keys to already-encoded values.
inline std::string mp_map(const std::vector<std::pair<std::string, std::string>>& entries) {
  msgpack::sbuffer buf;
  msgpack::packer<msgpack::sbuffer> pk(buf);
  pk.pack_map(static_cast<uint32_t>(entries.size()));
  for (const auto& [k, v] : entries) {
    pk.pack(k);
    buf.write(v.data(), v.size());
  }
  return std::string(buf.data(), buf.size());
}

template <typename T>
std::string mp(const T& v) {
  msgpack::sbuffer buf;
  msgpack::pack(buf, v);
  return std::string(buf.data(), buf.size());
}

// Reads a path like {"counters", "completed"} out of a msgpack map body as an integer (-1 if
// absent).
inline int64_t mp_int(const std::string& body, const std::vector<std::string>& path) {
  auto oh = msgpack::unpack(body.data(), body.size());
  msgpack::object o = oh.get();
  for (const auto& k : path) {
    if (o.type != msgpack::type::MAP) return -1;
    bool found = false;
    for (uint32_t i = 0; i < o.via.map.size; ++i) {
      const auto& kv = o.via.map.ptr[i];
      if (kv.key.type == msgpack::type::STR && kv.key.as<std::string>() == k) {
        o = kv.val;
        found = true;
        break;
      }
    }
    if (!found) return -1;
  }
  if (o.type == msgpack::type::POSITIVE_INTEGER) return static_cast<int64_t>(o.via.u64);
  if (o.type == msgpack::type::NEGATIVE_INTEGER) return o.via.i64;
  return -1;
}

}  // namespace ecgq::test
