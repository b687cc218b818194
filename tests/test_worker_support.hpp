// Stand-ins shared by the worker tests: a controllable fake model, a broker played by a ROUTER
// socket inside the test, and synthetic job bodies.
#pragma once

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <msgpack.hpp>
#include <mutex>
#include <optional>
#include <string>
#include <vector>
#include <zmq.hpp>

#include "model/model.hpp"
#include "protocol/decoded_job.hpp"
#include "protocol/protocol.hpp"
#include "protocol/schema.hpp"
#include "protocol/zmq_frames.hpp"
#include "records/preprocess.hpp"

namespace ecgq::test {

// A gate a fake model or loader blocks on until the test opens it.
class Gate {
 public:
  explicit Gate(bool open = true) : open_(open) {}
  // Lets every waiter (current and future) through.
  void open() {
    {
      std::lock_guard<std::mutex> l(m_);
      open_ = true;
    }
    cv_.notify_all();
  }
  // Makes future waiters block.
  void close() {
    std::lock_guard<std::mutex> l(m_);
    open_ = false;
  }
  // Blocks until open (at most 30 s so that a broken test cannot hang forever).
  void wait() {
    std::unique_lock<std::mutex> l(m_);
    cv_.wait_for(l, std::chrono::seconds(30), [&] { return open_; });
  }

 private:
  std::mutex m_;
  std::condition_variable cv_;
  bool open_;
};

// Knobs and counters shared between a test and the fake models it has the worker load.
struct FakeControl {
  Gate load_gate;
  Gate run_gate;
  std::atomic<int> loads{0};
  std::atomic<int> failing_loads{0};  // the next N loads fail
  std::atomic<int> runs{0};           // forward passes (warm-up included)
  std::atomic<int64_t> max_batch_seen{0};
  std::atomic<bool> throw_on_run{false};
  bool classifier = true;
  bool saliency = true;
  size_t ballast_bytes = 0;   // touched memory the model holds, to make sleeping visible in RSS
  std::string source_sha256;  // set: the model is an export of the checkpoint with this sha256
};

// A model with ECG-FM's shapes whose outputs are simple functions of the input.
class FakeModel : public Model {
 public:
  explicit FakeModel(FakeControl& control) : control_(control) {
    info_.kind = "ecgfm";
    info_.variant = control.classifier ? "classifier" : "pretrained";
    if (control.classifier)
      info_.labels = {"Atrial fibrillation", "Sinus rhythm", "Poor data quality"};
    info_.embed_dim = 4;
    info_.parameters = 1234;
    info_.source_sha256 = control.source_sha256;
    if (control.ballast_bytes) {
      ballast_.assign(control.ballast_bytes, 1);
      std::memset(ballast_.data(), 7, ballast_.size());
    }
  }
  const ModelInfo& info() const override { return info_; }
  Expected<ModelOutput> run(const float* x, int64_t n, const RunOptions& options) override {
    control_.runs++;
    int64_t seen = control_.max_batch_seen.load();
    while (n > seen && !control_.max_batch_seen.compare_exchange_weak(seen, n)) {
    }
    control_.run_gate.wait();
    if (control_.throw_on_run.load()) throw std::runtime_error("fake model exploded");
    const int64_t seg = info_.in_leads * info_.segment_samples;
    const int64_t frames = 3;
    ModelOutput out;
    out.batch = n;
    out.frames = frames;
    out.embed_dim = info_.embed_dim;
    for (int64_t b = 0; b < n; ++b) {
      double mean = 0;
      for (int64_t i = 0; i < seg; ++i) mean += x[b * seg + i];
      mean /= static_cast<double>(seg);
      for (int64_t e = 0; e < info_.embed_dim; ++e)
        out.embedding.push_back(static_cast<float>(mean + e + b));
      for (size_t l = 0; l < info_.labels.size(); ++l) {
        const float logit = static_cast<float>(0.5 * l - 0.25 + 0.1 * b);
        out.logits.push_back(logit);
        out.probs.push_back(1.0f / (1.0f + std::exp(-logit)));
      }
      if (options.saliency && control_.saliency)
        for (int64_t q = 0; q < frames; ++q)
          for (int64_t k = 0; k < frames; ++k)
            out.saliency.push_back(0.1f * static_cast<float>(q + k));
    }
    return out;
  }

 private:
  FakeControl& control_;
  ModelInfo info_;
  std::vector<char> ballast_;
};

// A loader that makes FakeModels (blocking on the load gate, failing when told to).
inline auto fake_loader(FakeControl& control) {
  return
      [&control](const std::string& path, const LoadOptions&) -> Expected<std::unique_ptr<Model>> {
        control.loads++;
        control.load_gate.wait();
        if (control.failing_loads.load() > 0) {
          control.failing_loads--;
          return Status(ErrorCode::ModelError, path + ": not a checkpoint (fake failure)");
        }
        return std::unique_ptr<Model>(new FakeModel(control));
      };
}

// 12-lead synthetic ECG-like record (sines of different frequencies), f32 in mV.
inline schema::Job synthetic_job(const std::string& id, double seconds = 10, double fs = 500) {
  schema::Job job;
  job.id = id;
  job.fs = fs;
  job.leads = kModelLeads;
  const int64_t n = static_cast<int64_t>(seconds * fs);
  std::vector<float> data(static_cast<size_t>(12 * n));
  for (int64_t l = 0; l < 12; ++l)
    for (int64_t t = 0; t < n; ++t)
      data[l * n + t] = static_cast<float>(std::sin(2 * M_PI * (1.0 + 0.3 * l) * t / fs) +
                                           0.2 * std::cos(2 * M_PI * 7.0 * t / fs));
  job.ecg.dtype = "f32";
  job.ecg.shape = {12, n};
  job.ecg.data.assign(reinterpret_cast<const char*>(data.data()), data.size() * sizeof(float));
  job.units = "mV";
  return job;
}

// A job body decoded as the worker decodes it on receipt (JobRunner takes decoded jobs).
inline Expected<schema::DecodedJob> decoded(std::string body) {
  return schema::DecodedJob::decode(std::move(body));
}

// A heartbeat status frame as the worker sends it.
struct WorkerStatus {
  std::string state;
  int64_t rss_bytes = -1;
  int64_t jobs_done = -1;
  int64_t inflight = -1;
};

// Decodes a msgpack map body into key -> object (the handle keeps the memory alive).
inline std::map<std::string, msgpack::object> msgpack_map(const std::string& body,
                                                          msgpack::object_handle& handle) {
  std::map<std::string, msgpack::object> out;
  handle = msgpack::unpack(body.data(), body.size());
  const msgpack::object& o = handle.get();
  if (o.type != msgpack::type::MAP) return out;
  for (uint32_t i = 0; i < o.via.map.size; ++i)
    out[o.via.map.ptr[i].key.as<std::string>()] = o.via.map.ptr[i].val;
  return out;
}

inline WorkerStatus decode_status(const std::string& body) {
  msgpack::object_handle h;
  auto m = msgpack_map(body, h);
  WorkerStatus s;
  if (m.count("state")) s.state = m["state"].as<std::string>();
  if (m.count("rss_bytes")) s.rss_bytes = m["rss_bytes"].as<int64_t>();
  if (m.count("jobs_done")) s.jobs_done = m["jobs_done"].as<int64_t>();
  if (m.count("inflight")) s.inflight = m["inflight"].as<int64_t>();
  return s;
}

// The broker's side of the worker protocol, played by a ROUTER socket in the test.
class FakeBroker {
 public:
  // One message from a worker.
  struct Received {
    std::string identity;
    mdp::WorkerMessage message;
  };

  explicit FakeBroker(const std::string& endpoint) : router_(ctx_, zmq::socket_type::router) {
    router_.set(zmq::sockopt::linger, 0);
    router_.bind(endpoint);
  }

  // The next non-heartbeat message within `timeout`; heartbeats on the way go to statuses().
  std::optional<Received> next(std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      auto r = next_any(deadline);
      if (!r) return std::nullopt;
      if (r->message.command != mdp::WorkerCommand::Heartbeat) return r;
    }
  }

  // Waits (up to `timeout`) for a heartbeat status satisfying `pred`, looking only at statuses
  // after the one the previous call returned; other messages on the way stay queued for next().
  std::optional<WorkerStatus> status_until(const std::function<bool(const WorkerStatus&)>& pred,
                                           std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      for (; cursor_ < statuses_.size(); ++cursor_) {
        if (pred(statuses_[cursor_])) return statuses_[cursor_++];
      }
      auto r = next_any(deadline, false);
      if (!r) return std::nullopt;
      if (r->message.command != mdp::WorkerCommand::Heartbeat) pending_.push_back(std::move(*r));
    }
  }

  // The raw status frame of the next heartbeat that has one (other messages stay queued).
  std::optional<std::string> next_heartbeat_status(std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      auto r = next_any(deadline, false);
      if (!r) return std::nullopt;
      if (r->message.command != mdp::WorkerCommand::Heartbeat) {
        pending_.push_back(std::move(*r));
        continue;
      }
      if (!r->message.body.empty()) return r->message.body[0];
    }
  }

  // Sends frames to the worker `identity`.
  void send(const std::string& identity, const mdp::Frames& frames) {
    mdp::Frames routed{identity};
    routed.insert(routed.end(), frames.begin(), frames.end());
    mdp::send_frames(router_, routed);
  }

  // Sends a REQUEST carrying `body` and job token `token`.
  void request(const std::string& identity, const std::string& token, const std::string& body) {
    send(identity, mdp::worker_reply_frames(mdp::WorkerCommand::Request, token, {body}));
  }

  // Whether heartbeats are answered (turn off to play a broker that hangs).
  bool echo_heartbeats = true;

  // Every heartbeat status received so far.
  const std::vector<WorkerStatus>& statuses() const { return statuses_; }
  // Heartbeats received so far (with or without a status frame).
  int heartbeats() const { return heartbeats_; }

 private:
  // The next message; `from_pending` first returns those set aside by the status readers.
  std::optional<Received> next_any(std::chrono::steady_clock::time_point deadline,
                                   bool from_pending = true) {
    if (from_pending && !pending_.empty()) {
      Received r = std::move(pending_.front());
      pending_.pop_front();
      return r;
    }
    for (;;) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) return std::nullopt;
      zmq::pollitem_t item{router_.handle(), 0, ZMQ_POLLIN, 0};
      zmq::poll(&item, 1, left);
      if (!(item.revents & ZMQ_POLLIN)) continue;
      auto frames = mdp::recv_frames(router_);
      if (!frames || frames->size() < 2) continue;
      Received r;
      r.identity = frames->front();
      frames->erase(frames->begin());
      auto parsed = mdp::parse_worker(*frames);
      EXPECT_TRUE(parsed.ok()) << parsed.status().to_string();
      if (!parsed) continue;
      r.message = std::move(parsed.value());
      if (r.message.command == mdp::WorkerCommand::Heartbeat) {
        heartbeats_++;
        // A live broker answers heartbeats; without this the worker would reconnect.
        if (echo_heartbeats) send(r.identity, mdp::heartbeat_frames());
        if (!r.message.body.empty()) statuses_.push_back(decode_status(r.message.body[0]));
      }
      return r;
    }
  }

  zmq::context_t ctx_;
  zmq::socket_t router_;
  std::deque<Received> pending_;
  std::vector<WorkerStatus> statuses_;
  size_t cursor_ = 0;
  int heartbeats_ = 0;
};

// Encodes a broker heartbeat status {keep_warm}.
inline std::string keep_warm_frame(bool keep) {
  msgpack::sbuffer buf;
  msgpack::packer<msgpack::sbuffer> pk(buf);
  pk.pack_map(1);
  pk.pack(std::string("keep_warm"));
  pk.pack(keep);
  return std::string(buf.data(), buf.size());
}

}  // namespace ecgq::test
