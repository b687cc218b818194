// Service times for the capacity planner: how long a worker takes to load its model and to run
// a forward pass of N segments. Measured on a live worker (`ecgq plan --calibrate`) or taken
// from the defaults below (docs/performance.md, full-size ECG-FM on 2 cores).
#pragma once

#include <string>
#include <vector>

#include "common/status.hpp"

namespace ecgq::planner {

// How long a worker's steps take, in milliseconds.
struct ServiceProfile {
  std::string name;                // where the figures come from ("default fp32", a file)
  double load_ms = 0;              // model load on a wake (from the local cache), warm-up included
  double preprocess_ms = 0;        // per job: decoding, resampling, segmenting
  double transport_ms = 0;         // per job: producer -> broker -> worker and back, encoding
  std::vector<double> forward_ms;  // [n] = one forward pass of n segments; [0] unused

  // A forward pass of `segments` segments: measured sizes as given, others interpolated
  // linearly (and extrapolated from the last two sizes measured).
  double forward(int segments) const;
  // The largest batch measured.
  int max_measured() const { return static_cast<int>(forward_ms.size()) - 1; }
};

// The built-in profile of the full-size model in `precision` ("fp32" or "bf16").
Expected<ServiceProfile> default_profile(const std::string& precision);
// Reads a profile file (JSON: {name, load_ms, preprocess_ms, forward_ms: {"1": ms, ...}}).
Expected<ServiceProfile> read_profile(const std::string& path);
// Writes a profile file that read_profile() reads back.
Status write_profile(const ServiceProfile& profile, const std::string& path);

}  // namespace ecgq::planner
