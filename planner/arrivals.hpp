// The traffic the planner simulates: job arrival times (and sizes), from a Poisson rate, a day
// curve, or a trace file of real arrivals.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.hpp"

namespace ecgq::planner {

// One job: when it arrives (seconds from the start) and its 5 s segments.
struct Arrival {
  double t_s = 0;
  int segments = 2;
};

// Parses a rate such as "2/min", "0.5/s", "30/h" or "1.5" (per second) into jobs per second.
Expected<double> parse_rate(const std::string& text);

// The arrivals of `spec` over `duration_s` seconds, in time order:
//   poisson:RATE                 a Poisson process of RATE
//   diurnal:PEAK,TROUGH          a Poisson process whose rate follows a day (peak at 14:00,
//                                trough at 02:00; the simulation starts at midnight)
//   FILE                         a CSV trace, one job per line: t_seconds[,segments]
// Generated jobs have `segments` segments; `seed` makes them repeatable.
Expected<std::vector<Arrival>> make_arrivals(const std::string& spec, double duration_s,
                                             int segments, uint64_t seed);

}  // namespace ecgq::planner
