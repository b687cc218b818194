// Peak memory of a worker process serving large jobs: how many copies of a job body the worker
// holds at once, measured from outside.
//
//   bench_job_memory --worker build/bin/ecgq-worker --checkpoint MODEL.pt [--seconds 3600]
//                    [--jobs 3] [--dtype f32|i16]
//
// Plays the broker on a ROUTER socket: starts the worker (capacity 1), waits until it is warm,
// sends `--jobs` jobs of `--seconds` of 12-lead samples at 500 Hz one after the other, and reads
// the worker's VmRSS/VmHWM (/proc/PID/status) when warm and after the jobs. Prints one JSON
// object: the body size, the peak growth over the warm RSS in bytes and in bodies, and each job's
// latency and preprocess_ms. Comparing two worker binaries on the same arguments shows what a
// change to the job path costs or saves.
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <msgpack.hpp>
#include <optional>
#include <string>
#include <vector>
#include <zmq.hpp>

#include "bench/bench_support.hpp"
#include "common/time.hpp"
#include "protocol/protocol.hpp"
#include "protocol/schema.hpp"

extern char** environ;

namespace {

using namespace ecgq;
using Clock = std::chrono::steady_clock;

struct Args {
  std::string worker;
  std::string checkpoint;
  double seconds = 3600;
  int jobs = 3;
  std::string dtype = "f32";
};

// A 12-lead record of sines, `seconds` at 500 Hz, as f32 or i16 (1 uV per unit).
schema::Job make_job(const Args& a, int k) {
  schema::Job job;
  job.id = "mem-" + std::to_string(k);
  job.fs = 500;
  job.leads = {"I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6"};
  const int64_t n = static_cast<int64_t>(a.seconds * 500);
  job.ecg.dtype = a.dtype;
  job.ecg.shape = {12, n};
  const size_t item = a.dtype == "i16" ? 2 : 4;
  job.ecg.data.resize(static_cast<size_t>(12 * n) * item);
  for (int64_t l = 0; l < 12; ++l)
    for (int64_t t = 0; t < n; ++t) {
      const double v = std::sin(2 * M_PI * (1.0 + 0.3 * l + 0.1 * k) * t / 500.0);
      const size_t at = static_cast<size_t>(l * n + t) * item;
      if (item == 2) {
        const int16_t q = static_cast<int16_t>(std::lround(v * 1000));
        std::memcpy(&job.ecg.data[at], &q, 2);
      } else {
        const float f = static_cast<float>(v);
        std::memcpy(&job.ecg.data[at], &f, 4);
      }
    }
  job.units = a.dtype == "i16" ? "uV" : "mV";
  return job;
}

// VmRSS or VmHWM of `pid` in bytes (0 when unreadable).
int64_t proc_bytes(int pid, const std::string& key) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind(key + ":", 0) == 0) return std::atoll(line.c_str() + key.size() + 1) * 1024;
  return 0;
}

// The "state" of a heartbeat status frame, or "".
std::string status_state(const std::string& body) {
  try {
    auto h = msgpack::unpack(body.data(), body.size());
    const auto& o = h.get();
    if (o.type != msgpack::type::MAP) return "";
    for (uint32_t i = 0; i < o.via.map.size; ++i)
      if (o.via.map.ptr[i].key.as<std::string>() == "state")
        return o.via.map.ptr[i].val.as<std::string>();
  } catch (const std::exception&) {
  }
  return "";
}

// The broker's side: answers heartbeats and returns the next message that is not one.
struct FakeBroker {
  zmq::context_t ctx;
  zmq::socket_t router{ctx, zmq::socket_type::router};
  std::string identity;
  std::string state;

  std::optional<mdp::WorkerMessage> next(std::chrono::seconds timeout) {
    const auto deadline = Clock::now() + timeout;
    while (Clock::now() < deadline) {
      zmq::pollitem_t item{router.handle(), 0, ZMQ_POLLIN, 0};
      zmq::poll(&item, 1, std::chrono::milliseconds(200));
      if (!(item.revents & ZMQ_POLLIN)) continue;
      mdp::Frames frames = bench::recv_frames(router);
      if (frames.size() < 2) continue;
      identity = frames[0];
      auto parsed = mdp::parse_worker(mdp::Frames(frames.begin() + 1, frames.end()));
      if (!parsed) continue;
      if (parsed->command == mdp::WorkerCommand::Heartbeat) {
        if (!parsed->body.empty()) state = status_state(parsed->body[0]);
        mdp::Frames reply = mdp::heartbeat_frames();
        reply.insert(reply.begin(), identity);
        bench::send_frames(router, reply);
        continue;
      }
      return parsed.value();
    }
    return std::nullopt;
  }
};

// Sends the jobs one at a time; their latency and preprocess_ms as JSON objects, or nullopt
// when one fails.
std::optional<std::string> run_jobs(FakeBroker& broker, const Args& a, size_t& body_bytes) {
  std::string json;
  for (int k = 0; k < a.jobs; ++k) {
    const std::string body = schema::encode_job(make_job(a, k));
    body_bytes = body.size();
    mdp::Frames request = mdp::worker_reply_frames(mdp::WorkerCommand::Request, "t", {body});
    request.insert(request.begin(), broker.identity);
    const auto sent = Clock::now();
    bench::send_frames(broker.router, request);
    std::optional<mdp::WorkerMessage> reply;
    while ((reply = broker.next(std::chrono::seconds(300))) &&
           reply->command != mdp::WorkerCommand::Final) {
    }
    if (!reply || reply->body.empty()) return std::nullopt;
    const double latency = ms_since(sent);
    auto result = schema::decode_result(reply->body[0]);
    if (!result || result->status != "ok") return std::nullopt;
    char buf[160];
    std::snprintf(buf, sizeof buf, "%s{\"latency_ms\": %.1f, \"preprocess_ms\": %.1f}",
                  k ? ", " : "", latency, result->timings.preprocess_ms);
    json += buf;
  }
  return json;
}

int usage() {
  std::fprintf(stderr,
               "usage: bench_job_memory --worker PATH --checkpoint PATH [--seconds S] [--jobs N] "
               "[--dtype f32|i16]\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  Args a;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i], v = argv[i + 1];
    if (k == "--worker")
      a.worker = v;
    else if (k == "--checkpoint")
      a.checkpoint = v;
    else if (k == "--seconds")
      a.seconds = std::atof(v.c_str());
    else if (k == "--jobs")
      a.jobs = std::atoi(v.c_str());
    else if (k == "--dtype")
      a.dtype = v;
    else
      return usage();
  }
  if (a.worker.empty() || a.checkpoint.empty() || (a.dtype != "f32" && a.dtype != "i16"))
    return usage();

  FakeBroker broker;
  broker.router.set(zmq::sockopt::linger, 0);
  const std::string endpoint = "tcp://127.0.0.1:" + std::to_string(bench::free_port());
  broker.router.bind(endpoint);
  std::vector<std::string> args = {a.worker,         "serve",      "--broker",   endpoint,
                                   "--checkpoint",   a.checkpoint, "--capacity", "1",
                                   "--idle-timeout", "1h",         "--threads",  "1",
                                   "--log-level",    "warn"};
  std::vector<char*> cargv;
  for (auto& s : args) cargv.push_back(s.data());
  cargv.push_back(nullptr);
  pid_t pid = -1;
  if (posix_spawn(&pid, a.worker.c_str(), nullptr, nullptr, cargv.data(), environ) != 0) {
    std::perror("posix_spawn");
    return 1;
  }
  auto fail = [&](const char* what) {
    std::fprintf(stderr, "bench_job_memory: %s\n", what);
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
    return 1;
  };
  auto ready = broker.next(std::chrono::seconds(30));
  if (!ready || ready->command != mdp::WorkerCommand::Ready) return fail("no READY");
  const auto warm_deadline = Clock::now() + std::chrono::seconds(60);
  while (broker.state != "warm" && Clock::now() < warm_deadline)
    broker.next(std::chrono::seconds(1));
  if (broker.state != "warm") return fail("the worker never reported warm");

  const int64_t rss_warm = proc_bytes(pid, "VmRSS");
  const int64_t hwm_warm = proc_bytes(pid, "VmHWM");
  size_t body_bytes = 0;
  auto jobs_json = run_jobs(broker, a, body_bytes);
  if (!jobs_json) return fail("a job failed or got no FINAL");
  const int64_t hwm_after = proc_bytes(pid, "VmHWM");
  ::kill(pid, SIGTERM);
  ::waitpid(pid, nullptr, 0);
  const int64_t growth = hwm_after - rss_warm;
  std::printf(
      "{\"worker\": \"%s\", \"dtype\": \"%s\", \"seconds\": %.0f, \"body_bytes\": %zu, "
      "\"rss_warm\": %lld, \"hwm_warm\": %lld, \"hwm_after\": %lld, \"peak_growth_bytes\": %lld, "
      "\"peak_growth_bodies\": %.2f, \"jobs\": [%s]}\n",
      a.worker.c_str(), a.dtype.c_str(), a.seconds, body_bytes, static_cast<long long>(rss_warm),
      static_cast<long long>(hwm_warm), static_cast<long long>(hwm_after),
      static_cast<long long>(growth), static_cast<double>(growth) / static_cast<double>(body_bytes),
      jobs_json->c_str());
  return 0;
}
