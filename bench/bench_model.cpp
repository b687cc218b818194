// bench_model: memory and forward-pass figures of the native ECG-FM model, one process, in phases.
//
//   bench_model --checkpoint FULL.pt [--baseline-checkpoint TINY.pt] [--input X.npy]
//               [--threads N] [--reps N] [--batches 1,2,4,8] [--precision fp32,bf16]
//               [--throughput-seconds S [--wait-go]] [--no-unload]
//
// Phases (each prints one key=value line on stdout; sizes in KiB from /proc/self/status):
//   start       before LibTorch does anything
//   baseline    after loading and running the tiny checkpoint once (in the first precision) and
//               dropping it, so LibTorch, its allocator and thread pools are initialised: the
//               "LibTorch only" figure
//   load        per precision, after load_model(FULL): warm RSS, and VmHWM of the load alone (the
//               peak is reset through /proc/self/clear_refs just before); a precision that does
//               not load prints error=CODE instead (the message goes to stderr) and is skipped
//   forward     per precision and batch: a warm-up pass, then --reps timed passes (median, min)
//   throughput  with --throughput-seconds: passes of the first batch size back to back for S
//               seconds (after phase=ready, and after a line on stdin with --wait-go, so that
//               several processes can start together)
//   unload      per precision, after the model is destroyed and free heap returned (what the
//               worker's sleep does); the last precision keeps its model with --no-unload
// The input (default: 2 segments of a fixed pattern) is tiled to each batch size.
// bench/model_bench.py drives this binary and writes docs/performance.md.
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "common/memory.hpp"
#include "model/model.hpp"
#include "records/npy.hpp"

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

// CPU seconds used by all threads of this process so far.
// Minor page faults of this process so far (first touches of fresh memory, mostly).
long minor_faults() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_minflt;
}

// Seconds on CLOCK_MONOTONIC (perf record -k CLOCK_MONOTONIC timestamps), for profiling a phase.
double monotonic_s() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

double process_cpu_s() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

std::vector<std::string> split(const std::string& text) {
  std::vector<std::string> out;
  std::stringstream in(text);
  std::string item;
  while (std::getline(in, item, ','))
    if (!item.empty()) out.push_back(item);
  return out;
}

int usage(const std::string& why) {
  std::cerr
      << "bench_model: " << why
      << "\nusage: bench_model --checkpoint FULL.pt [--baseline-checkpoint TINY.pt] "
         "[--input X.npy] [--threads N] [--reps N] [--batches 1,2,4,8] "
         "[--precision fp32,bf16] [--bf16-split-layers N] [--throughput-seconds S [--wait-go]] "
         "[--no-unload]\n";
  return 2;
}

// `n` segments: the input's segments repeated in order.
std::vector<float> tile(const std::vector<float>& x, int64_t have, int64_t n) {
  const size_t seg = x.size() / static_cast<size_t>(have);
  std::vector<float> out(seg * static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i)
    std::copy_n(x.begin() + static_cast<std::ptrdiff_t>(seg * static_cast<size_t>(i % have)), seg,
                out.begin() + static_cast<std::ptrdiff_t>(seg * static_cast<size_t>(i)));
  return out;
}

struct Plan {
  std::vector<int64_t> batches{2};
  int reps = 5;
  int threads = 0;
  double throughput_s = 0;
  bool wait_go = false;
};

// Forward and throughput phases of one loaded model; false when a pass fails.
bool measure(ecgq::Model& model, const std::string& precision, const std::vector<float>& x,
             int64_t have, const Plan& plan) {
  ecgq::RunOptions run_options;
  run_options.encoder_out = true;
  for (int64_t n : plan.batches) {
    const std::vector<float> in = tile(x, have, n);
    reset_peak();
    auto first = Clock::now();
    const double first_c = process_cpu_s(), first_mono = monotonic_s();
    const long first_f = minor_faults();
    auto out = model.run(in.data(), n, run_options);
    const double first_s = seconds_since(first);
    const double first_cpu_s = process_cpu_s() - first_c;  // with the JIT of a new batch size
    const long first_faults = minor_faults() - first_f;
    const double first_mono_end = monotonic_s();
    if (!out.ok()) {
      std::cerr << "bench_model: " << out.status().to_string() << "\n";
      return false;
    }
    // Wall and process CPU seconds per pass; CPU time holds up better when other work shares
    // the cores (with OMP_WAIT_POLICY=PASSIVE, so that waiting threads do not spin).
    std::vector<double> times, cpu;
    std::vector<long> faults;
    std::ostringstream marks;  // CLOCK_MONOTONIC start and end of each timed pass
    for (int r = 0; r < plan.reps; ++r) {
      auto t = Clock::now();
      const double c = process_cpu_s();
      const long f = minor_faults();
      marks << (r ? ";" : "") << std::fixed << std::setprecision(6) << monotonic_s();
      auto o = model.run(in.data(), n, run_options);
      marks << "," << monotonic_s();
      times.push_back(seconds_since(t));
      cpu.push_back(process_cpu_s() - c);
      faults.push_back(minor_faults() - f);
      if (!o.ok()) return false;
    }
    std::sort(times.begin(), times.end());
    std::sort(cpu.begin(), cpu.end());
    std::sort(faults.begin(), faults.end());
    std::ostringstream fwd;
    fwd << "precision=" << precision << " batch=" << n << " threads=" << plan.threads
        << " first_forward_s=" << first_s << " first_cpu_s=" << first_cpu_s
        << " forward_s=" << times[times.size() / 2] << " forward_min_s=" << times.front()
        << " cpu_s=" << cpu[cpu.size() / 2] << " cpu_min_s=" << cpu.front()
        << " first_minor_faults=" << first_faults << " minor_faults=" << faults[faults.size() / 2]
        << " reps=" << plan.reps << std::fixed << std::setprecision(6)
        << " first_monotonic=" << first_mono << "," << first_mono_end
        << " pass_monotonic=" << marks.str();
    report("forward", fwd.str());
  }
  if (plan.throughput_s <= 0) return true;
  const int64_t n = plan.batches.front();
  const std::vector<float> in = tile(x, have, n);
  report("ready", "precision=" + precision + " batch=" + std::to_string(n));
  if (plan.wait_go) {
    std::string go;
    std::getline(std::cin, go);
  }
  std::vector<double> times;
  auto t0 = Clock::now();
  while (seconds_since(t0) < plan.throughput_s) {
    auto t = Clock::now();
    if (!model.run(in.data(), n, run_options).ok()) return false;
    times.push_back(seconds_since(t));
  }
  const double wall = seconds_since(t0);
  std::sort(times.begin(), times.end());
  std::ostringstream tp;
  tp << "precision=" << precision << " batch=" << n << " threads=" << plan.threads
     << " passes=" << times.size() << " segments=" << times.size() * static_cast<size_t>(n)
     << " seconds=" << wall << " segments_per_s=" << static_cast<double>(times.size() * n) / wall
     << " latency_median_s=" << times[times.size() / 2] << " latency_min_s=" << times.front();
  report("throughput", tp.str());
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  std::string checkpoint, baseline, input;
  std::vector<std::string> precisions{"fp32"};
  Plan plan;
  bool unload = true;
  int split_layers = -1;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string { return i + 1 < argc ? argv[++i] : std::string(); };
    if (a == "--checkpoint") {
      checkpoint = next();
    } else if (a == "--baseline-checkpoint") {
      baseline = next();
    } else if (a == "--input") {
      input = next();
    } else if (a == "--threads") {
      plan.threads = std::atoi(next().c_str());
    } else if (a == "--reps") {
      plan.reps = std::max(1, std::atoi(next().c_str()));
    } else if (a == "--batches") {
      plan.batches.clear();
      for (const auto& b : split(next())) plan.batches.push_back(std::max(1, std::atoi(b.c_str())));
      if (plan.batches.empty()) return usage("--batches needs a list such as 1,2,4,8");
    } else if (a == "--precision") {
      precisions = split(next());
      if (precisions.empty()) return usage("--precision needs fp32, bf16 or fp32,bf16");
    } else if (a == "--bf16-split-layers") {
      split_layers = std::atoi(next().c_str());
    } else if (a == "--throughput-seconds") {
      plan.throughput_s = std::atof(next().c_str());
    } else if (a == "--wait-go") {
      plan.wait_go = true;
    } else if (a == "--no-unload") {
      unload = false;
    } else {
      return usage("unknown argument '" + a + "'");
    }
  }
  if (checkpoint.empty()) return usage("--checkpoint is required");

  // Input: the given file, or 2 segments of a deterministic non-zero pattern.
  std::vector<float> x;
  int64_t have = 2;
  if (!input.empty()) {
    auto a = ecgq::read_npy(input);
    if (!a.ok()) return usage(a.status().to_string());
    if (a->shape.size() != 3 || a->shape[0] < 1) return usage("--input must be [N, 12, 2500]");
    have = a->shape[0];
    x = a->to_float();
  } else {
    x.resize(static_cast<size_t>(have) * 12 * 2500);
    for (size_t i = 0; i < x.size(); ++i)
      x[i] = static_cast<float>((i * 2654435761u) % 1000) / 500.0f - 1.0f;
  }

  report("start");
  ecgq::configure_threads(plan.threads);
  ecgq::LoadOptions options;
  options.intra_op_threads = plan.threads;
  options.bf16_split_layers = split_layers;

  if (!baseline.empty()) {
    // The first precision initialises what a worker of that precision initialises (oneDNN for
    // bf16); fp32 when that precision cannot load.
    options.precision = precisions.front();
    auto tiny = ecgq::load_model(baseline, options);
    if (!tiny.ok()) {
      options.precision = "fp32";
      tiny = ecgq::load_model(baseline, options);
    }
    if (!tiny.ok()) {
      std::cerr << "bench_model: " << tiny.status().to_string() << "\n";
      return 1;
    }
    ecgq::RunOptions run_options;
    auto out = (*tiny)->run(x.data(), 1, run_options);
    if (!out.ok()) {
      std::cerr << "bench_model: " << out.status().to_string() << "\n";
      return 1;
    }
  }
  ecgq::release_free_memory();
  report("baseline", "precision=" + options.precision);

  int failed = 0;
  for (size_t p = 0; p < precisions.size(); ++p) {
    const std::string& precision = precisions[p];
    options.precision = precision;
    const bool peak_reset = reset_peak();
    auto t0 = Clock::now();
    auto model = ecgq::load_model(checkpoint, options);
    const double load_s = seconds_since(t0);
    if (!model.ok()) {
      std::cerr << "bench_model: precision " << precision << ": " << model.status().to_string()
                << "\n";
      std::cout << "phase=load precision=" << precision << " error=" << model.status().code()
                << std::endl;
      ++failed;
      continue;
    }
    report("load", "precision=" + precision + " load_s=" + std::to_string(load_s) +
                       " peak_reset=" + (peak_reset ? "1" : "0") +
                       " parameters=" + std::to_string((*model)->info().parameters) +
                       " model_precision=" + (*model)->info().precision);
    if (!measure(**model, precision, x, have, plan)) return 1;
    if (unload || p + 1 < precisions.size()) {
      model->reset();  // destroys the model: what the worker's unload does
      ecgq::release_free_memory();
      report("unload", "precision=" + precision);
    }
  }
  return failed == 0 ? 0 : (failed == static_cast<int>(precisions.size()) ? 1 : 3);
}
