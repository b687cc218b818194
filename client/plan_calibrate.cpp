// `ecgq plan --calibrate`: service times measured on a live worker through the broker, written as
// a planner profile. Forward passes come from the results' own `infer_ms` (one job of n
// segments is one forward pass of n segments); a load from the first job if it was a cold start.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>

#include "client/cli.hpp"
#include "client/cli_plan.hpp"
#include "planner/profile.hpp"
#include "protocol/schema.hpp"

namespace ecgq::client {

namespace {

// A synthetic 12-lead ECG of `segments` 5 s segments at 500 Hz (the values do not change the
// forward pass's time).
schema::Job calibration_job(int segments, int salt) {
  const int64_t samples = int64_t{2500} * segments;
  std::vector<float> v(static_cast<size_t>(12 * samples));
  for (size_t i = 0; i < v.size(); ++i)
    v[i] = 0.5f * std::sin(0.01f * static_cast<float>(i % 2500) + static_cast<float>(salt));
  schema::Job job;
  job.ecg.dtype = "f32";
  job.ecg.shape = {12, samples};
  job.ecg.data.assign(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(float));
  job.fs = 500;
  job.leads = {"I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6"};
  return job;
}

// Runs one job and waits for its result; `round_trip_ms` is submit to FINAL.
Expected<schema::Result> run_one(Client& client, schema::Job job, double& round_trip_ms) {
  const auto sent = std::chrono::steady_clock::now();
  ASSIGN_OR_RETURN(const std::string id, client.submit(std::move(job)));
  while (true) {
    ASSIGN_OR_RETURN(auto event, client.poll(Millis(200)));
    if (event && event->id == id && event->result) {
      round_trip_ms =
          std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - sent)
              .count();
      return *event->result;
    }
  }
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

}  // namespace

int run_calibrate(const PlanCommand& c) {
  if (c.out.empty()) {
    std::fprintf(stderr, "ecgq plan: --calibrate needs --out PROFILE (see ecgq plan --help)\n");
    return kExitUsage;
  }
  Client client(c.client);
  planner::ServiceProfile p;
  p.name = "calibrated on " + c.client.broker + " (" + c.client.service + ")";
  p.forward_ms.assign(9, 0.0);
  std::vector<double> preprocess, transport;
  double load_ms = -1;
  for (int segments : {1, 2, 4, 8}) {
    std::vector<double> infer;
    for (int k = 0; k < std::max(1, c.repeats); ++k) {
      double round_trip_ms = 0;
      auto r = run_one(client, calibration_job(segments, k), round_trip_ms);
      if (!r) {
        std::fprintf(stderr, "ecgq plan: calibration failed: %s\n", r.status().to_string().c_str());
        return kExitFailed;
      }
      if (r->status != "ok") {
        std::fprintf(stderr, "ecgq plan: calibration job failed: %s\n",
                     r->error ? r->error->message.c_str() : "error");
        return kExitFailed;
      }
      if (r->cold_start && load_ms < 0) load_ms = r->timings.wake_ms;
      infer.push_back(r->timings.infer_ms);
      preprocess.push_back(r->timings.preprocess_ms);
      // What the worker's own clock does not see: sockets, the broker, encoding.
      transport.push_back(std::max(0.0, round_trip_ms - r->timings.total_ms));
    }
    p.forward_ms[segments] = median(infer);
    std::fprintf(stderr, "ecgq plan: %d segment(s): forward %.1f ms (median of %zu)\n", segments,
                 p.forward_ms[segments], infer.size());
  }
  p.preprocess_ms = median(preprocess);
  p.transport_ms = median(transport);
  if (load_ms < 0) {
    // No cold start happened: the worker was warm throughout. The built-in load stands.
    load_ms = planner::default_profile("fp32")->load_ms;
    p.name += "; load_ms from the built-in profile (no cold start seen)";
  }
  p.load_ms = load_ms;
  if (Status s = planner::write_profile(p, c.out); !s.ok()) {
    std::fprintf(stderr, "ecgq plan: %s\n", s.to_string().c_str());
    return kExitFailed;
  }
  std::fprintf(stderr, "ecgq plan: profile written to %s (load %.1f ms)\n", c.out.c_str(),
               p.load_ms);
  return kExitOk;
}

}  // namespace ecgq::client
