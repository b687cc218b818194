#include "client/cli_plan.hpp"

#include <spdlog/spdlog.h>

#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "client/cli.hpp"
#include "client/plan_plot.hpp"
#include "common/duration.hpp"
#include "planner/plan.hpp"

namespace ecgq::client {

namespace {

using planner::ClusterSpec;
using planner::PlanResult;

int plan_usage(const std::string& message) {
  std::fprintf(stderr, "ecgq plan: %s (see ecgq plan --help)\n", message.c_str());
  return kExitUsage;
}

// The cluster the command line describes; errors name the option.
Expected<ClusterSpec> cluster_of(const PlanCommand& c) {
  ClusterSpec s;
  if (c.workers < 1 || c.capacity < 1 || c.max_batch < 1 || c.keep_warm < 0 || c.max_queue < 1)
    return Status(ErrorCode::BadUsage,
                  "--workers, --capacity, --max-batch and --max-queue must be >= 1, "
                  "--keep-warm >= 0");
  s.workers = c.workers;
  s.capacity = c.capacity;
  s.max_batch = c.max_batch;
  s.keep_warm = c.keep_warm;
  s.max_queue = c.max_queue;
  if (c.initial != "warm" && c.initial != "asleep")
    return Status(ErrorCode::BadUsage, "--initial is " + c.initial + "; expected warm or asleep");
  s.initial_warm = c.initial == "warm";
  ASSIGN_OR_RETURN(s.idle_timeout, parse_duration(c.idle_timeout));
  ASSIGN_OR_RETURN(s.service_wait, parse_duration(c.service_wait));
  if (!c.deadline.empty()) {
    ASSIGN_OR_RETURN(auto d, parse_duration(c.deadline));
    s.deadline = d;
  }
  return s;
}

// One swept setting applied to a copy of the cluster.
Status apply_setting(ClusterSpec& s, const std::string& key, const std::string& value) {
  if (key == "idle-timeout") {
    ASSIGN_OR_RETURN(s.idle_timeout, parse_duration(value));
  } else if (key == "workers" || key == "keep-warm") {
    int n = 0;
    try {
      n = std::stoi(value);
    } catch (const std::exception&) {
      return Status(ErrorCode::BadUsage, "--sweep " + key + " value " + value + " is not a number");
    }
    if (n < (key == "workers" ? 1 : 0))
      return Status(ErrorCode::BadUsage, "--sweep " + key + " value " + value + " is out of range");
    (key == "workers" ? s.workers : s.keep_warm) = n;
  } else {
    return Status(ErrorCode::BadUsage,
                  "--sweep " + key + " is not idle-timeout, workers or keep-warm");
  }
  return Status::Ok();
}

nlohmann::json to_json(const PlanResult& r) {
  return {
      {"jobs", r.jobs},
      {"ok", r.ok},
      {"cold_starts", r.cold_starts},
      {"cold_start_fraction", r.jobs > 0 ? static_cast<double>(r.cold_starts) / r.jobs : 0},
      {"wakes", r.wakes},
      {"loads", r.loads},
      {"latency_ms", {{"p50", r.p50_ms}, {"p95", r.p95_ms}, {"p99", r.p99_ms}, {"max", r.max_ms}}},
      {"worker_hours_awake", r.worker_hours_awake},
      {"worker_hours_asleep", r.worker_hours_asleep},
      {"peak_queue", r.peak_queue},
      {"queue_full", r.queue_full},
      {"deadline_missed", r.deadline_missed},
      {"other_errors", r.other_errors},
      {"simulated_s", r.simulated_s}};
}

void print_row(const std::string& label, const PlanResult& r) {
  const double cold = r.jobs > 0 ? 100.0 * static_cast<double>(r.cold_starts) / r.jobs : 0;
  std::printf(
      "%-14s %8lld %8lld %7lld %5.1f%% %6lld %9.0f %9.0f %9.0f %9.0f %8.2f %8.2f %6lld %6lld "
      "%6lld\n",
      label.c_str(), static_cast<long long>(r.jobs), static_cast<long long>(r.ok),
      static_cast<long long>(r.cold_starts), cold, static_cast<long long>(r.wakes), r.p50_ms,
      r.p95_ms, r.p99_ms, r.max_ms, r.worker_hours_awake, r.worker_hours_asleep,
      static_cast<long long>(r.peak_queue), static_cast<long long>(r.queue_full),
      static_cast<long long>(r.deadline_missed));
}

using PlanRuns = std::vector<std::pair<std::string, ClusterSpec>>;

// The runs to simulate: the cluster as given, or one copy per value of --sweep KEY=V1,V2,...
Expected<PlanRuns> runs_of(const PlanCommand& c, const ClusterSpec& cluster,
                           std::string& sweep_key) {
  PlanRuns runs;
  if (c.sweep.empty()) {
    runs.emplace_back("as given", cluster);
    return runs;
  }
  const size_t eq = c.sweep.find('=');
  if (eq == std::string::npos || eq + 1 >= c.sweep.size())
    return Status(ErrorCode::BadUsage,
                  "--sweep wants KEY=V1,V2,... (e.g. idle-timeout=1m,5m,15m,1h)");
  sweep_key = c.sweep.substr(0, eq);
  const std::string values = c.sweep.substr(eq + 1);
  for (size_t start = 0; start <= values.size();) {
    const size_t comma = std::min(values.find(',', start), values.size());
    const std::string value = values.substr(start, comma - start);
    ClusterSpec s = cluster;
    RETURN_IF_ERROR(apply_setting(s, sweep_key, value));
    runs.emplace_back(sweep_key + "=" + value, s);
    start = comma + 1;
  }
  return runs;
}

// --json: one object, or {sweep, rows} with --sweep.
void print_plan_json(const PlanRuns& runs, const std::vector<PlanResult>& results,
                     const std::string& sweep_key, const std::string& profile_name) {
  nlohmann::json out;
  if (sweep_key.empty()) {
    out = to_json(results.front());
  } else {
    out = {{"sweep", sweep_key}, {"rows", nlohmann::json::array()}};
    for (size_t i = 0; i < runs.size(); ++i) {
      nlohmann::json row = to_json(results[i]);
      row["setting"] = runs[i].first.substr(sweep_key.size() + 1);
      out["rows"].push_back(row);
    }
  }
  out["profile"] = profile_name;
  std::printf("%s\n", out.dump().c_str());
}

}  // namespace

CLI::App* add_plan_command(CLI::App& app, PlanCommand& c) {
  auto* p = app.add_subcommand(
      "plan",
      "simulate a cluster's sleep/wake policy on a traffic: latency, cold starts, worker-hours "
      "(the broker's and worker's own policy code on simulated time; docs/planning.md)");
  p->add_option("--arrivals", c.arrivals,
                "poisson:RATE (2/min, 0.5/s), diurnal:PEAK,TROUGH (a day, peak at 14:00), or a "
                "CSV trace FILE of t_seconds[,segments]");
  p->add_option("--duration", c.duration,
                "simulated time (default 24h; a trace's own span for a file)");
  p->add_option("--segments", c.segments, "5 s segments per generated job (2: a 10 s ECG)");
  p->add_option("--seed", c.seed, "seed of the generated arrivals");
  p->add_option("--workers", c.workers, "ecgq-worker processes");
  p->add_option("--capacity", c.capacity, "the worker setting capacity");
  p->add_option("--max-batch", c.max_batch, "the worker setting max_batch (segments per pass)");
  p->add_option("--idle-timeout", c.idle_timeout, "the worker setting idle_timeout");
  p->add_option("--keep-warm", c.keep_warm, "the broker setting keep_warm (workers never asleep)");
  p->add_option("--initial", c.initial, "workers start warm or asleep");
  p->add_option("--max-queue", c.max_queue, "the broker setting max_queue");
  p->add_option("--service-wait", c.service_wait, "the broker setting service_wait");
  p->add_option("--deadline", c.deadline, "every job's deadline (e.g. 2s); default none");
  p->add_option("--precision", c.precision, "the built-in profile: fp32 or bf16");
  p->add_option("--profile", c.profile, "a profile file with measured service times");
  p->add_option("--load-ms", c.load_ms,
                "a wake's model load in ms, overriding the profile (e.g. a cold page cache or a "
                "network volume)");
  p->add_option("--sweep", c.sweep,
                "KEY=V1,V2,...: one row per value of idle-timeout, workers "
                "or keep-warm");
  p->add_flag("--json", c.json, "print JSON (one object, or {sweep, rows} with --sweep)");
  p->add_option("--plot", c.plot,
                "with --sweep: write FILE, an SVG of latency p99 and worker-hours awake against "
                "the swept setting");
  p->add_flag("--calibrate", c.calibrate,
              "measure a profile on a live worker through --broker and write it to --out");
  p->add_option("--out", c.out, "--calibrate: the profile file to write");
  p->add_option("--repeats", c.repeats, "--calibrate: jobs per batch size (median taken)");
  return p;
}

int run_plan(const PlanCommand& c) {
  if (c.calibrate) return run_calibrate(c);
  if (c.arrivals.empty()) return plan_usage("--arrivals is required (e.g. poisson:2/min)");
  auto cluster = cluster_of(c);
  if (!cluster) return plan_usage(cluster.status().message());
  auto profile =
      c.profile.empty() ? planner::default_profile(c.precision) : planner::read_profile(c.profile);
  if (!profile) return plan_usage(profile.status().message());
  if (c.load_ms >= 0) profile->load_ms = c.load_ms;
  const bool trace = c.arrivals.rfind("poisson:", 0) != 0 && c.arrivals.rfind("diurnal:", 0) != 0;
  double duration_s = trace ? 0 : 86400;
  if (!c.duration.empty()) {
    auto d = parse_duration(c.duration);
    if (!d) return plan_usage("--duration: " + d.status().message());
    duration_s = static_cast<double>(d->count()) / 1000.0;
  }
  if (c.segments < 1) return plan_usage("--segments must be >= 1");
  auto arrivals = planner::make_arrivals(c.arrivals, duration_s, c.segments, c.seed);
  if (!arrivals) return plan_usage(arrivals.status().message());
  if (trace && c.duration.empty() && !arrivals->empty()) duration_s = arrivals->back().t_s;

  // One run per swept value (or one run): the same arrivals each time.
  std::string sweep_key;
  auto runs = runs_of(c, *cluster, sweep_key);
  if (!runs) return plan_usage(runs.status().message());
  // The core logs every job at info: a day of traffic must not print a day of log lines.
  const auto level = spdlog::get_level();
  spdlog::set_level(spdlog::level::warn);
  std::vector<PlanResult> results;
  for (const auto& [label, spec] : *runs)
    results.push_back(planner::simulate(spec, *profile, *arrivals, duration_s));
  spdlog::set_level(level);
  if (!c.plot.empty()) {
    if (c.sweep.empty()) return plan_usage("--plot draws a sweep: give --sweep KEY=V1,V2,...");
    std::vector<std::pair<std::string, PlanResult>> rows;
    for (size_t i = 0; i < runs->size(); ++i) rows.emplace_back((*runs)[i].first, results[i]);
    if (Status s = write_plan_plot(c.plot, sweep_key, rows); !s.ok()) {
      std::fprintf(stderr, "ecgq plan: %s\n", s.to_string().c_str());
      return kExitFailed;
    }
  }

  if (c.json) {
    print_plan_json(*runs, results, sweep_key, profile->name);
    return kExitOk;
  }
  std::printf("ecgq plan: %zu jobs over %.0f s, profile %s\n", arrivals->size(), duration_s,
              profile->name.c_str());
  std::printf("%-14s %8s %8s %7s %6s %6s %9s %9s %9s %9s %8s %8s %6s %6s %6s\n", "setting", "jobs",
              "ok", "cold", "cold%", "wakes", "p50 ms", "p95 ms", "p99 ms", "max ms", "awake h",
              "asleep h", "peakq", "full", "late");
  for (size_t i = 0; i < runs->size(); ++i) print_row((*runs)[i].first, results[i]);
  return kExitOk;
}

}  // namespace ecgq::client
