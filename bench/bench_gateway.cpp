// /predict through ecgq-gateway against what `ecgq submit` does for the same record (read the
// file, build the job, submit it through the client library, wait for the result), one record at
// a time, alternating, against the same cluster:
//   bench_gateway BROKER_ENDPOINT GATEWAY_PORT N FILE...   (FILE...: the record's files, the
//   first one being the one `ecgq submit` is given, e.g. HR06000.hea HR06000.mat)
// Prints one JSON line: p50/p90/mean milliseconds of each path and the p50 overhead.
#include <httplib.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "client/client.hpp"
#include "client/job_source.hpp"

namespace {

using Clock = std::chrono::steady_clock;

double pct(std::vector<double> v, double q) {
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(q * static_cast<double>(v.size())))];
}

double mean(const std::vector<double>& v) {
  double s = 0;
  for (double x : v) s += x;
  return s / static_cast<double>(v.size());
}

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 5) {
    std::fprintf(stderr, "usage: bench_gateway BROKER GATEWAY_PORT N FILE...\n");
    return 2;
  }
  const std::string broker = argv[1];
  const int port = std::stoi(argv[2]);
  const int n = std::stoi(argv[3]);
  std::vector<std::string> files(argv + 4, argv + argc);
  httplib::MultipartFormDataItems items;
  for (const auto& f : files)
    items.push_back({"file", slurp(f), f.substr(f.rfind('/') + 1), "application/octet-stream"});
  httplib::Client http("127.0.0.1", port);
  http.set_keep_alive(true);
  http.set_read_timeout(120, 0);
  ecgq::client::ClientOptions o;
  o.broker = broker;
  ecgq::client::Client zmq_client(o);
  std::vector<double> gw, direct, gw_infer, direct_infer, gw_total, direct_total;
  for (int i = -3; i < n; ++i) {  // three warm-up rounds are not counted
    auto t0 = Clock::now();
    auto r = http.Post("/predict", items);
    const double g = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
    if (!r || r->status != 200) {
      std::fprintf(stderr, "gateway: %s\n", r ? r->body.c_str() : "no answer");
      return 1;
    }
    t0 = Clock::now();
    auto job = ecgq::client::job_from_path(files[0], {});
    if (!job) return 1;
    auto id = zmq_client.submit(std::move(*job));
    if (!id) return 1;
    std::optional<ecgq::schema::Result> result;
    while (!result) {
      auto ev = zmq_client.poll(std::chrono::milliseconds(1000));
      if (!ev) return 1;
      if (ev->has_value() && (*ev)->id == *id) result = (*ev)->result;
    }
    const double d = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
    if (i >= 0) {
      // Where the time went, as the results tell: the worker's forward passes and broker receipt
      // to result.
      const auto j = nlohmann::json::parse(r->body);
      gw.push_back(g);
      gw_infer.push_back(j["timings"]["infer_ms"].get<double>());
      gw_total.push_back(j["timings"]["total_ms"].get<double>());
      direct.push_back(d);
      direct_infer.push_back(result->timings.infer_ms);
      direct_total.push_back(result->timings.total_ms);
    }
  }
  std::printf(
      "{\"n\": %d, \"gateway_p50_ms\": %.2f, \"gateway_p90_ms\": %.2f, \"gateway_mean_ms\": %.2f, "
      "\"client_p50_ms\": %.2f, \"client_p90_ms\": %.2f, \"client_mean_ms\": %.2f, "
      "\"p50_overhead_pct\": %.1f, \"gateway_infer_p50_ms\": %.2f, \"client_infer_p50_ms\": %.2f, "
      "\"gateway_total_p50_ms\": %.2f, \"client_total_p50_ms\": %.2f}\n",
      n, pct(gw, 0.5), pct(gw, 0.9), mean(gw), pct(direct, 0.5), pct(direct, 0.9), mean(direct),
      100.0 * (pct(gw, 0.5) - pct(direct, 0.5)) / pct(direct, 0.5), pct(gw_infer, 0.5),
      pct(direct_infer, 0.5), pct(gw_total, 0.5), pct(direct_total, 0.5));
  return 0;
}
