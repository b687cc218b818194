// The capacity planner's two figures (issue 19): how fast it simulates (a 24 h trace at 1 job/s,
// target under 10 s), and how close its predicted latency is to a real cluster's (target p50
// within 20%). With --broker, a Poisson trace is replayed against that live broker (jobs paced at
// their arrival times, distinct 10 s ECGs), and the planner is run on the same submit times with
// --profile (from `ecgq plan --calibrate` on the same cluster). bench/planner_bench.py starts the
// cluster and runs both.
//
//   bench_planner [--broker EP --profile FILE [--rate 1/s] [--duration 60s] [--workers 1]
//                 [--idle-timeout 15m] [--initial warm|asleep]] [--json]
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <map>
#include <string>
#include <thread>

#include "client/client.hpp"
#include "planner/plan.hpp"

using namespace ecgq;
using Clock = std::chrono::steady_clock;

namespace {

struct Args {
  std::string broker, profile, rate = "1/s", duration = "60s", idle_timeout = "15m",
                               initial = "warm";
  int workers = 1;
  bool json = false;
};

[[noreturn]] void usage(const std::string& why) {
  std::fprintf(stderr, "bench_planner: %s\n", why.c_str());
  std::exit(2);
}

Args parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    const std::string k = argv[i];
    if (k == "--json") {
      a.json = true;
      continue;
    }
    if (i + 1 >= argc) usage(k + " needs a value");
    const std::string v = argv[++i];
    if (k == "--broker")
      a.broker = v;
    else if (k == "--profile")
      a.profile = v;
    else if (k == "--rate")
      a.rate = v;
    else if (k == "--duration")
      a.duration = v;
    else if (k == "--idle-timeout")
      a.idle_timeout = v;
    else if (k == "--initial")
      a.initial = v;
    else if (k == "--workers")
      a.workers = std::atoi(v.c_str());
    else
      usage("unknown option " + k);
  }
  return a;
}

double percentile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1,
                    static_cast<size_t>(q * static_cast<double>(v.size() - 1) + 0.5))];
}

// A distinct 10 s 12-lead ECG (2 segments) per job, so that no cache answers it.
schema::Job ecg(int salt) {
  std::vector<float> v(12 * 5000);
  for (size_t i = 0; i < v.size(); ++i)
    v[i] = 0.5f * std::sin(0.013f * static_cast<float>(i % 5000) + 0.1f * static_cast<float>(salt));
  schema::Job job;
  job.ecg.dtype = "f32";
  job.ecg.shape = {12, 5000};
  job.ecg.data.assign(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(float));
  job.fs = 500;
  job.leads = {"I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6"};
  return job;
}

// Replays `arrivals` against the broker; returns each job's latency and its real submit time.
std::vector<double> replay(const Args& a, std::vector<planner::Arrival>& arrivals,
                           int64_t& cold_starts) {
  client::ClientOptions o;
  o.broker = a.broker;
  client::Client c(o);
  std::map<std::string, Clock::time_point> sent;
  std::vector<double> latency;
  const auto t0 = Clock::now();
  size_t next = 0;
  while (next < arrivals.size() || !sent.empty()) {
    if (next < arrivals.size()) {
      const auto due = t0 + std::chrono::duration_cast<Clock::duration>(
                                std::chrono::duration<double>(arrivals[next].t_s));
      if (Clock::now() >= due) {
        auto id = c.submit(ecg(static_cast<int>(next)));
        if (!id) usage("submit: " + id.status().to_string());
        const auto now = Clock::now();
        arrivals[next].t_s = std::chrono::duration<double>(now - t0).count();
        sent[*id] = now;
        ++next;
        continue;
      }
    }
    auto event = c.poll(std::chrono::milliseconds(5));
    if (!event) usage("poll: " + event.status().to_string());
    if (!*event || !(*event)->result) continue;
    const auto& r = *(*event)->result;
    auto it = sent.find((*event)->id);
    if (it == sent.end()) continue;
    if (r.status == "ok") {
      latency.push_back(
          std::chrono::duration<double, std::milli>(Clock::now() - it->second).count());
      cold_starts += r.cold_start ? 1 : 0;
    }
    sent.erase(it);
  }
  return latency;
}

}  // namespace

int main(int argc, char** argv) {
  const Args a = parse(argc, argv);
  spdlog::set_level(spdlog::level::warn);
  // 1. Speed: a day at 1 job/s with the built-in profile.
  const auto day = planner::make_arrivals("poisson:1/s", 86400, 2, 1);
  const auto fp32 = planner::default_profile("fp32");
  const auto s0 = Clock::now();
  const auto sim = planner::simulate(planner::ClusterSpec{}, *fp32, *day, 86400);
  const double sim_s = std::chrono::duration<double>(Clock::now() - s0).count();
  std::printf("24 h at 1 job/s: %lld jobs simulated in %.2f s (target < 10 s)\n",
              static_cast<long long>(sim.jobs), sim_s);
  std::string json = "\"day_jobs\": " + std::to_string(sim.jobs) +
                     ", \"day_simulated_in_s\": " + std::to_string(sim_s);
  // 2. Fidelity: the same trace on a real cluster and in the planner.
  if (!a.broker.empty()) {
    if (a.profile.empty()) usage("--broker needs --profile (ecgq plan --calibrate)");
    auto profile = planner::read_profile(a.profile);
    if (!profile) usage(profile.status().to_string());
    auto duration = parse_duration(a.duration);
    auto idle = parse_duration(a.idle_timeout);
    if (!duration || !idle) usage("bad --duration or --idle-timeout");
    const double span_s = static_cast<double>(duration->count()) / 1000.0;
    auto arrivals = planner::make_arrivals("poisson:" + a.rate, span_s, 2, 7);
    if (!arrivals) usage(arrivals.status().to_string());
    int64_t real_cold = 0;
    const auto real = replay(a, *arrivals, real_cold);
    planner::ClusterSpec cluster;
    cluster.workers = a.workers;
    cluster.idle_timeout = *idle;
    cluster.initial_warm = a.initial == "warm";
    const auto predicted = planner::simulate(cluster, *profile, *arrivals, span_s);
    const double real_p50 = percentile(real, 0.5), real_p95 = percentile(real, 0.95);
    std::printf(
        "trace poisson:%s over %s, %zu jobs: real p50 %.1f ms p95 %.1f ms, %lld cold; "
        "predicted p50 %.1f ms p95 %.1f ms, %lld cold; p50 predicted/real %.3f "
        "(target 0.8 to 1.2)\n",
        a.rate.c_str(), a.duration.c_str(), real.size(), real_p50, real_p95,
        static_cast<long long>(real_cold), predicted.p50_ms, predicted.p95_ms,
        static_cast<long long>(predicted.cold_starts), predicted.p50_ms / real_p50);
    char buf[256];
    std::snprintf(buf, sizeof buf,
                  ", \"real_p50_ms\": %.2f, \"real_p95_ms\": %.2f, \"predicted_p50_ms\": %.2f, "
                  "\"predicted_p95_ms\": %.2f, \"real_cold\": %lld, \"predicted_cold\": %lld",
                  real_p50, real_p95, predicted.p50_ms, predicted.p95_ms,
                  static_cast<long long>(real_cold), static_cast<long long>(predicted.cold_starts));
    json += buf;
  }
  if (a.json) std::printf("json: {%s}\n", json.c_str());
  return 0;
}
