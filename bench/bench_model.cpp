// bench_model: memory and forward-pass figures of the native ECG-FM model, one process, in phases.
//
//   bench_model --checkpoint FULL.pt [--baseline-checkpoint TINY.pt] [--input X.npy]
//               [--threads N] [--reps N] [--no-unload]
//
// Phases (each prints one key=value line on stdout; sizes in KiB from /proc/self/status):
//   start     before LibTorch does anything
//   baseline  after loading and running the tiny checkpoint once and dropping it, so LibTorch,
//             its allocator and thread pools are initialised: the "LibTorch only" figure
//   load      after load_model(FULL): warm RSS, and VmHWM of the load alone (the peak is reset
//             through /proc/self/clear_refs just before)
//   forward   after a warm-up and --reps timed forward passes (median and min seconds)
//   unload    after the model is destroyed and free heap returned (what the worker's sleep does)
// bench/model_bench.py drives this binary and writes docs/performance.md.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "common/npy.hpp"
#include "worker/memory.hpp"
#include "worker/model.hpp"

namespace {

using Clock = std::chrono::steady_clock;

// The VmRSS, VmHWM, RssAnon and RssFile lines of /proc/self/status, in KiB.
std::map<std::string, long> proc_status() {
  std::map<std::string, long> out;
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    for (const char* key : {"VmRSS", "VmHWM", "RssAnon", "RssFile"}) {
      std::string k = std::string(key) + ":";
      if (line.compare(0, k.size(), k) == 0) out[key] = std::atol(line.c_str() + k.size());
    }
  }
  return out;
}

// Resets VmHWM to the current RSS (Linux >= 4.0), so the next peak is one phase's own.
bool reset_peak() {
  std::ofstream f("/proc/self/clear_refs");
  f << "5";
  f.flush();
  return static_cast<bool>(f);
}

void report(const std::string& phase, const std::string& extra = {}) {
  auto s = proc_status();
  std::cout << "phase=" << phase << " rss_kb=" << s["VmRSS"] << " hwm_kb=" << s["VmHWM"]
            << " rss_anon_kb=" << s["RssAnon"] << " rss_file_kb=" << s["RssFile"];
  if (!extra.empty()) std::cout << " " << extra;
  std::cout << std::endl;
}

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

int usage(const std::string& why) {
  std::cerr << "bench_model: " << why
            << "\nusage: bench_model --checkpoint FULL.pt [--baseline-checkpoint TINY.pt] "
               "[--input X.npy] [--threads N] [--reps N] [--no-unload]\n";
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  std::string checkpoint, baseline, input;
  int threads = 0, reps = 5;
  bool unload = true;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string { return i + 1 < argc ? argv[++i] : std::string(); };
    if (a == "--checkpoint")
      checkpoint = next();
    else if (a == "--baseline-checkpoint")
      baseline = next();
    else if (a == "--input")
      input = next();
    else if (a == "--threads")
      threads = std::atoi(next().c_str());
    else if (a == "--reps")
      reps = std::max(1, std::atoi(next().c_str()));
    else if (a == "--no-unload")
      unload = false;
    else
      return usage("unknown argument '" + a + "'");
  }
  if (checkpoint.empty()) return usage("--checkpoint is required");

  // Input: the given file, or 2 segments of a deterministic non-zero pattern.
  std::vector<float> x;
  int64_t n = 2;
  if (!input.empty()) {
    auto a = ecgq::read_npy(input);
    if (!a.ok()) return usage(a.status().to_string());
    if (a->shape.size() != 3) return usage("--input must be [N, 12, 2500]");
    n = a->shape[0];
    x = a->to_float();
  } else {
    x.resize(static_cast<size_t>(n) * 12 * 2500);
    for (size_t i = 0; i < x.size(); ++i)
      x[i] = static_cast<float>((i * 2654435761u) % 1000) / 500.0f - 1.0f;
  }

  report("start");
  ecgq::configure_threads(threads);
  ecgq::LoadOptions options;
  options.intra_op_threads = threads;
  ecgq::RunOptions run_options;
  run_options.encoder_out = true;

  if (!baseline.empty()) {
    auto tiny = ecgq::load_model(baseline, options);
    if (!tiny.ok()) {
      std::cerr << "bench_model: " << tiny.status().to_string() << "\n";
      return 1;
    }
    auto out = (*tiny)->run(x.data(), n, run_options);
    if (!out.ok()) {
      std::cerr << "bench_model: " << out.status().to_string() << "\n";
      return 1;
    }
  }
  ecgq::release_free_memory();
  report("baseline");

  const bool peak_reset = reset_peak();
  auto t0 = Clock::now();
  auto model = ecgq::load_model(checkpoint, options);
  const double load_s = seconds_since(t0);
  if (!model.ok()) {
    std::cerr << "bench_model: " << model.status().to_string() << "\n";
    return 1;
  }
  report("load", "load_s=" + std::to_string(load_s) + " peak_reset=" + (peak_reset ? "1" : "0") +
                     " parameters=" + std::to_string((*model)->info().parameters));

  reset_peak();
  auto first = Clock::now();
  auto out = (*model)->run(x.data(), n, run_options);
  const double first_s = seconds_since(first);
  if (!out.ok()) {
    std::cerr << "bench_model: " << out.status().to_string() << "\n";
    return 1;
  }
  std::vector<double> times;
  for (int r = 0; r < reps; ++r) {
    auto t = Clock::now();
    auto o = (*model)->run(x.data(), n, run_options);
    times.push_back(seconds_since(t));
    if (!o.ok()) return 1;
  }
  std::sort(times.begin(), times.end());
  std::ostringstream fwd;
  fwd << "batch=" << n << " threads=" << threads << " first_forward_s=" << first_s
      << " forward_s=" << times[times.size() / 2] << " forward_min_s=" << times.front()
      << " reps=" << reps;
  report("forward", fwd.str());

  if (unload) {
    model->reset();  // destroys the model: what the worker's unload does
    ecgq::release_free_memory();
    report("unload");
  }
  return 0;
}
