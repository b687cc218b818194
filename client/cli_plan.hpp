// `ecgq plan`: the capacity planner's command line (docs/planning.md). It parses a traffic and a
// cluster description, runs the simulation (planner/) once or once per swept value, and prints a
// table or JSON. No broker is contacted.
#pragma once

#include <CLI/CLI.hpp>
#include <string>

#include "client/client.hpp"

namespace ecgq::client {

// The command line of `ecgq plan`, as typed.
struct PlanCommand {
  std::string arrivals;  // poisson:RATE, diurnal:PEAK,TROUGH, or a trace file
  std::string duration;  // "" = 24h for generated traffic, the trace's span for a file
  int segments = 2;      // 5 s segments per generated job (10 s ECGs)
  uint64_t seed = 1;     // for generated arrivals
  int workers = 1;
  int capacity = 2;
  int max_batch = 4;
  std::string idle_timeout = "15m";
  int keep_warm = 0;
  std::string initial = "warm";  // warm or asleep
  int64_t max_queue = 10000;
  std::string service_wait = "60s";
  std::string deadline;            // "" = none
  std::string precision = "fp32";  // the default profile's precision
  std::string profile;             // a profile file (ecgq plan --calibrate writes one)
  double load_ms = -1;             // overrides the profile's load time when >= 0
  std::string sweep;               // KEY=V1,V2,...: idle-timeout, workers or keep-warm
  bool json = false;
  std::string plot;        // with --sweep: an SVG of p99 and worker-hours against the setting
  bool calibrate = false;  // measure a profile on a live worker instead of planning
  std::string out;         // --calibrate: where to write the profile
  int repeats = 3;         // --calibrate: jobs per batch size
  ClientOptions client;    // --calibrate: the broker (global --broker, --service)
};

// `ecgq plan --calibrate`: times forward passes of 1, 2, 4 and 8 segments (and a load, when a
// cold start happens) on a live worker through the broker, and writes a profile file.
int run_calibrate(const PlanCommand& command);

// Declares `plan` and its options on `app`.
CLI::App* add_plan_command(CLI::App& app, PlanCommand& command);
// Runs it: 0, or 2 for bad usage (one line naming the problem).
int run_plan(const PlanCommand& command);

}  // namespace ecgq::client
