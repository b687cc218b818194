// End-to-end fixtures: a real ecgq-broker and real `ecgq-worker serve` processes with the tiny
// fine-tuned checkpoint on 127.0.0.1, driven through the client library or the ecgq CLI.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "client/client.hpp"
#include "client/json_output.hpp"
#include "records/preprocess.hpp"
#include "protocol/schema.hpp"
#include "tests/support/process.hpp"

namespace ecgq::test {

using namespace std::chrono_literals;

// Skips the calling test when a binary is missing (it is built by another engineer's target).
#define ECGQ_REQUIRE_BINARIES(...)                                                                \
  do {                                                                                            \
    for (const char* name_ : {__VA_ARGS__}) {                                                     \
      if (!std::filesystem::exists(bin(name_))) {                                                 \
        GTEST_SKIP() << bin(name_) << " is not built yet (build ecgq-broker, ecgq-worker, ecgq)"; \
      }                                                                                           \
    }                                                                                             \
  } while (0)

// The tiny fine-tuned ECG-FM checkpoint (17 labels).
inline std::string tiny_checkpoint() {
  return data_path("ecgfm/tiny_finetuned.pt");
}

// Heartbeats in tests: a killed worker is noticed within 2 s, yet a loaded machine moving a
// multi-megabyte job does not look like a dead peer.
inline const std::vector<std::string> kHeartbeat = {"--heartbeat-interval", "100ms",
                                                    "--heartbeat-liveness", "20"};

// A broker process; ready once it answers mmi.service (asked with `probe_keys` when it runs CURVE).
class Broker {
 public:
  explicit Broker(std::vector<std::string> extra = {},
                  std::optional<curve::ClientKeys> probe_keys = std::nullopt) {
    // A port found free can be taken by a concurrent test before the broker binds it: retry.
    for (int attempt = 0; attempt < 3 && !ready; ++attempt) {
      endpoint = free_endpoint();
      std::vector<std::string> argv{bin("ecgq-broker"), "--bind", endpoint, "--log-level", "debug"};
      argv.insert(argv.end(), kHeartbeat.begin(), kHeartbeat.end());
      argv.insert(argv.end(), extra.begin(), extra.end());
      proc = std::make_unique<ChildProcess>(argv);
      client::ClientOptions o;
      o.broker = endpoint;
      o.curve = probe_keys;
      client::Client probe(o);
      ready = wait_until(
                  [&] { return !proc->running() || probe.service_available("ecg-fm", 500ms).ok(); },
                  20s) &&
              proc->running();
    }
  }
  // What to print when the broker did not come up.
  std::string diagnostics() {
    return "broker " + endpoint +
           (proc->running() ? " running" : " exited with " + std::to_string(proc->wait(0ms))) +
           ": " + proc->stderr_text();
  }
  std::string endpoint;
  std::unique_ptr<ChildProcess> proc;
  bool ready = false;
};

// A worker process serving ecg-fm with the tiny checkpoint under a known id.
inline std::unique_ptr<ChildProcess> start_worker(const std::string& endpoint,
                                                  const std::string& id,
                                                  std::vector<std::string> extra = {}) {
  std::vector<std::string> argv{
      bin("ecgq-worker"), "serve", "--broker",  endpoint, "--checkpoint", tiny_checkpoint(),
      "--worker-id",      id,      "--threads", "1",      "--log-level",  "debug"};
  argv.insert(argv.end(), kHeartbeat.begin(), kHeartbeat.end());
  argv.insert(argv.end(), extra.begin(), extra.end());
  return std::make_unique<ChildProcess>(argv);
}

// A misbehaving MDP worker (tests/support/rogue_worker.py): blackhole, garbage or otherjob.
inline std::unique_ptr<ChildProcess> start_rogue(const std::string& endpoint,
                                                 const std::string& mode, const std::string& id,
                                                 int capacity = 1) {
  return std::make_unique<ChildProcess>(
      std::vector<std::string>{"/usr/bin/python3", source("tests/support/rogue_worker.py"),
                               endpoint, "ecg-fm", mode, id, std::to_string(capacity)});
}

// How many times `needle` occurs in `text` (log events, a rogue worker's lines).
inline size_t occurrences(const std::string& text, const std::string& needle) {
  size_t n = 0;
  for (size_t at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) ++n;
  return n;
}

// REQUESTs a rogue worker received (it prints a line for each).
inline size_t jobs_received(const ChildProcess& rogue) {
  return occurrences(rogue.stdout_text(), "job\n");
}

// A client-library connection to `endpoint` with test-sized timeouts.
inline std::unique_ptr<client::Client> connect(const std::string& endpoint, Millis timeout = 30s) {
  client::ClientOptions o;
  o.broker = endpoint;
  o.timeout = timeout;
  return std::make_unique<client::Client>(o);
}

// mmi.status as JSON (null when the broker does not answer).
inline client::Json status_json(client::Client& c) {
  auto body = c.status(2s);
  if (!body) return nullptr;
  auto j = client::msgpack_json(*body);
  return j ? *j : client::Json(nullptr);
}

// A number at `path` in a JSON object, or `fallback` when any step is missing (never throws).
inline int64_t json_int(const client::Json& j, std::initializer_list<const char*> path,
                        int64_t fallback = -1) {
  const client::Json* at = &j;
  for (const char* key : path) {
    if (!at->is_object() || !at->contains(key)) return fallback;
    at = &at->at(key);
  }
  return at->is_number() ? at->get<int64_t>() : fallback;
}

// The ecg-fm workers in mmi.status, by id -> state.
inline std::map<std::string, std::string> worker_states(client::Client& c) {
  std::map<std::string, std::string> out;
  const client::Json s = status_json(c);
  if (!s.is_object() || !s.contains("services") || !s.at("services").contains("ecg-fm")) return out;
  const client::Json& svc = s.at("services").at("ecg-fm");
  if (!svc.contains("workers") || !svc.at("workers").is_array()) return out;
  for (const auto& w : svc.at("workers")) {
    if (w.is_object()) out[w.value("id", "")] = w.value("state", "");
  }
  return out;
}

// Waits until every id in `ids` is registered and in `state`.
inline bool wait_workers(client::Client& c, const std::vector<std::string>& ids,
                         const std::string& state = "warm", Millis timeout = 30s) {
  return wait_until(
      [&] {
        const auto states = worker_states(c);
        for (const auto& id : ids) {
          auto it = states.find(id);
          if (it == states.end() || it->second != state) return false;
        }
        return true;
      },
      timeout);
}

// A synthetic 12-lead record in mV at 500 Hz: sinusoids with lead-specific phases.
inline std::vector<float> synthetic_ecg(int64_t samples) {
  std::vector<float> v(static_cast<size_t>(12 * samples));
  for (int64_t l = 0; l < 12; ++l) {
    for (int64_t t = 0; t < samples; ++t) {
      const double x = static_cast<double>(t) / 500.0;
      v[static_cast<size_t>(l * samples + t)] =
          static_cast<float>(0.8 * std::sin(2 * M_PI * 1.2 * x + 0.3 * static_cast<double>(l)) +
                             0.1 * std::sin(2 * M_PI * 17.0 * x));
    }
  }
  return v;
}

// A 12-lead f32 job at 500 Hz holding `v` ([12, v.size() / 12], in mV).
inline schema::Job f32_job(const std::vector<float>& v) {
  const int64_t samples = static_cast<int64_t>(v.size() / 12);
  schema::Job j;
  j.ecg.dtype = "f32";
  j.ecg.shape = {12, samples};
  j.ecg.data.assign(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(float));
  j.fs = 500;
  j.leads = kModelLeads;
  return j;
}

// A valid 12-lead f32 job of `samples` samples at 500 Hz.
inline schema::Job ecg_job(int64_t samples = 2500) {
  return f32_job(synthetic_ecg(samples));
}

// The same record as i16 ADC units (1000 per mV): half the bytes on the wire.
inline schema::Job ecg_job_i16(int64_t samples) {
  const std::vector<float> v = synthetic_ecg(samples);
  std::vector<int16_t> adc(v.size());
  for (size_t i = 0; i < v.size(); ++i) adc[i] = static_cast<int16_t>(std::lround(v[i] * 1000.0f));
  schema::Job j;
  j.ecg.dtype = "i16";
  j.ecg.shape = {12, samples};
  j.ecg.data.assign(reinterpret_cast<const char*>(adc.data()), adc.size() * sizeof(int16_t));
  j.fs = 500;
  j.leads = kModelLeads;
  j.gain = {1000.0};
  return j;
}

// Waits for the FINAL of job `id`, collecting the events of every job meanwhile in `seen`.
inline std::optional<schema::Result> wait_result(client::Client& c, const std::string& id,
                                                 Millis timeout = 60s,
                                                 std::vector<client::JobEvent>* seen = nullptr) {
  const auto until = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < until) {
    auto ev = c.poll(100ms);
    if (!ev) {
      ADD_FAILURE() << ev.status().to_string();
      return std::nullopt;
    }
    if (!ev->has_value()) continue;
    if (seen != nullptr) seen->push_back(**ev);
    if ((*ev)->id == id && (*ev)->result) return *(*ev)->result;
  }
  ADD_FAILURE() << "no result for " << id;
  return std::nullopt;
}

// Submits a job and waits for its result.
inline std::optional<schema::Result> run_job(client::Client& c, schema::Job job,
                                             Millis timeout = 60s) {
  auto id = c.submit(std::move(job));
  if (!id) {
    ADD_FAILURE() << id.status().to_string();
    return std::nullopt;
  }
  return wait_result(c, *id, timeout);
}

}  // namespace ecgq::test
