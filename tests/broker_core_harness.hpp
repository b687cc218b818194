// The broker core on a fake clock, for unit tests: MDP in, actions out, time injected, with
// helpers that build jobs, results and READY metadata and read the core's answers.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "broker/core.hpp"
#include "protocol/extensions.hpp"
#include "protocol/schema.hpp"

namespace ecgq::broker::test {

using namespace std::chrono_literals;
using mdp::Frames;

inline const std::string kClientA = std::string(1, '\0') + "client-a";
inline const std::string kClientB = std::string(1, '\0') + "client-b";
inline const std::string kWorker1 = std::string(1, '\0') + "worker-1";
inline const std::string kWorker2 = std::string(1, '\0') + "worker-2";

// A valid ecgq job body: 1 lead, 4 f32 samples (`sample` varies the content key).
inline std::string job_body(const std::string& id, std::optional<int64_t> deadline_ms = {},
                            float sample = 0.f, const std::string& meta = {}) {
  schema::Job j;
  j.id = id;
  j.ecg.dtype = "f32";
  j.ecg.shape = {1, 4};
  j.ecg.data.assign(16, '\0');
  std::memcpy(&j.ecg.data[0], &sample, sizeof sample);
  j.fs = 500;
  j.leads = {"I"};
  j.deadline_ms = deadline_ms;
  j.meta = meta;
  return schema::encode_job(j);
}

// An ok result for job `id`, as run by a model with this sha256.
inline std::string ok_result(const std::string& id, const std::string& sha256 = {}) {
  schema::Result r;
  r.id = id;
  r.worker_id = "w";
  r.model.sha256 = sha256;
  r.model.precision = sha256.empty() ? "" : "fp32";
  r.probs = {0.25f};
  r.labels = {"x"};
  return schema::encode_result(r);
}

// READY metadata of an extension-aware worker.
inline std::string ready_meta(const std::string& id, int64_t capacity = 1,
                              WorkerState state = WorkerState::Warm,
                              const std::string& sha256 = {}) {
  ext::ReadyMetadata m;
  m.worker_id = id;
  m.capacity = capacity;
  m.state = state;
  if (!sha256.empty()) m.model = schema::ModelIdentity{"ecgfm", "m.pt", sha256, "fp32"};
  m.pid = 100;
  m.host = "h";
  return ext::encode_ready(m);
}

inline BrokerConfig test_config() {
  BrokerConfig c;
  c.heartbeat_interval = 100ms;
  c.heartbeat_liveness = 3;
  c.service_wait = 1000ms;
  c.shutdown_grace = 500ms;
  return c;
}

// The core on a fake clock, with helpers that speak MDP to it and read its actions.
class Core {
 public:
  explicit Core(BrokerConfig config = test_config())
      : now(TimePoint{} + 1h),
        core(std::move(config), now, [this] { return "b1-" + std::to_string(++ids); }) {}

  int ids = 0;  // ids assigned so far (before `core`: it uses them)

  TimePoint now;
  BrokerCore core;
  std::string key;     // the CURVE key of the next messages ("" = CURVE off)
  unsigned roles = 0;  // the roles of that key

  // Moves the clock and ticks.
  Actions advance(std::chrono::milliseconds d) {
    now += d;
    return core.handle(Tick{now});
  }
  Actions tick() { return core.handle(Tick{now}); }
  // The messages that follow arrive with this CURVE key and these roles (as the socket side
  // would stamp them); the default, no key and no roles, is a broker without CURVE.
  Core& as(std::string curve_key, unsigned curve_roles) {
    key = std::move(curve_key);
    roles = curve_roles;
    return *this;
  }
  Actions received(const std::string& peer, Frames frames) {
    return core.handle(Received{peer, std::move(frames), now, key, roles});
  }
  Actions request(const std::string& client, const std::string& service, Frames body) {
    return received(client,
                    mdp::client_frames(mdp::ClientCommand::Request, service, std::move(body)));
  }
  Actions submit(const std::string& client, const std::string& body) {
    return request(client, "ecg-fm", {body});
  }
  Actions ready(const std::string& worker, const std::string& metadata = {},
                const std::string& service = "ecg-fm") {
    return received(worker, mdp::ready_frames(service, metadata));
  }
  Actions final(const std::string& worker, const std::string& token, const std::string& body) {
    return received(worker, mdp::worker_reply_frames(mdp::WorkerCommand::Final, token, {body}));
  }
  Actions heartbeat(const std::string& worker, const std::string& status = {}) {
    return received(worker, mdp::heartbeat_frames(status));
  }
  // The reply body of an mmi.* service.
  std::string mmi(const std::string& service, const std::string& body,
                  const std::string& client = kClientA) {
    auto out = request(client, service, {body});
    auto finals = Core::finals(out, client);
    EXPECT_FALSE(finals.empty());
    return finals.empty() ? std::string() : finals.back().at(3);
  }
  ext::BrokerStatus status() {
    auto s = ext::decode_status(mmi("mmi.status", ""));
    EXPECT_TRUE(s.ok()) << s.status().to_string();
    return s.ok() ? *s : ext::BrokerStatus{};
  }

  // Frames sent to `peer` whose command byte (frame 1) is `command`.
  static std::vector<Frames> sent(const Actions& actions, const std::string& peer, char command) {
    std::vector<Frames> out;
    for (const auto& a : actions)
      if (const auto* s = std::get_if<Send>(&a))
        if (s->peer == peer && s->frames.size() >= 2 && s->frames[1] == std::string(1, command))
          out.push_back(s->frames);
    return out;
  }
  static std::vector<Frames> requests(const Actions& a, const std::string& worker) {
    return sent(a, worker, static_cast<char>(mdp::WorkerCommand::Request));
  }
  static std::vector<Frames> finals(const Actions& a, const std::string& client) {
    return sent(a, client, static_cast<char>(mdp::ClientCommand::Final));
  }
  static std::vector<Frames> partials(const Actions& a, const std::string& client) {
    return sent(a, client, static_cast<char>(mdp::ClientCommand::Partial));
  }
  static bool disconnects(const Actions& actions, const std::string& peer) {
    for (const auto& a : actions)
      if (const auto* d = std::get_if<Disconnect>(&a))
        if (d->peer == peer) return true;
    return false;
  }
};

inline schema::Job job_of(const Frames& request) {
  auto j = schema::decode_job(request.at(4));
  EXPECT_TRUE(j.ok()) << j.status().to_string();
  return j.ok() ? *j : schema::Job{};
}

inline schema::Result result_of(const Frames& final) {
  auto r = schema::decode_result(final.at(3));
  EXPECT_TRUE(r.ok()) << r.status().to_string();
  return r.ok() ? *r : schema::Result{};
}

inline std::string code_of(const Frames& final) {
  auto r = result_of(final);
  return r.error ? r.error->code : "";
}

inline schema::Progress progress_of(const Frames& partial) {
  auto p = schema::decode_progress(partial.at(3));
  EXPECT_TRUE(p.ok()) << p.status().to_string();
  return p.ok() ? *p : schema::Progress{};
}

}  // namespace ecgq::broker::test
