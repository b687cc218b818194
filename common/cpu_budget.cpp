#include "common/cpu_budget.hpp"

#include <sched.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <vector>

namespace ecgq {
namespace {

namespace fs = std::filesystem;

// The first line of a file, or "" when it cannot be read.
std::string first_line(const fs::path& path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  return line;
}

// Parses a whole decimal integer (optionally negative); false on anything else.
bool parse_int(const std::string& text, long long* out) {
  if (text.empty()) return false;
  size_t used = 0;
  try {
    *out = std::stoll(text, &used);
  } catch (...) {
    return false;
  }
  return used == text.size();
}

// Quota in CPUs from cgroup v2's cpu.max in `dir` ("max 100000" or "150000 100000"), 0 = none.
double v2_quota(const fs::path& dir) {
  std::istringstream in(first_line(dir / "cpu.max"));
  std::string quota, period;
  long long q = 0, p = 0;
  if (!(in >> quota >> period) || quota == "max") return 0;
  if (!parse_int(quota, &q) || !parse_int(period, &p) || q <= 0 || p <= 0) return 0;
  return static_cast<double>(q) / static_cast<double>(p);
}

// Quota in CPUs from cgroup v1's cpu.cfs_quota_us / cpu.cfs_period_us in `dir` (-1 = none), 0 =
// none.
double v1_quota(const fs::path& dir) {
  long long q = 0, p = 0;
  if (!parse_int(first_line(dir / "cpu.cfs_quota_us"), &q) ||
      !parse_int(first_line(dir / "cpu.cfs_period_us"), &p) || q <= 0 || p <= 0)
    return 0;
  return static_cast<double>(q) / static_cast<double>(p);
}

// The directories from `leaf` up to and including `top` (leaf first); just `top` when `leaf` is
// not below it.
std::vector<fs::path> up_to(const fs::path& top, const std::string& relative) {
  std::vector<fs::path> dirs;
  fs::path rel = fs::path(relative).relative_path();
  for (;;) {
    fs::path dir = rel.empty() ? top : top / rel;
    std::error_code ec;
    if (fs::is_directory(dir, ec)) dirs.push_back(dir);
    if (rel.empty()) break;
    rel = rel.parent_path();
  }
  return dirs;
}

// Lowers `best` (0 = none yet) to `quota` when that is tighter, remembering `file`.
void tighten(double quota, const fs::path& file, double* best, std::string* source) {
  if (quota <= 0 || (*best > 0 && quota >= *best)) return;
  *best = quota;
  if (source) *source = file.string();
}

}  // namespace

double cgroup_cpu_quota(const std::string& root, std::string* source) {
  const fs::path base = root.empty() ? fs::path("/") : fs::path(root);
  std::ifstream in(base / "proc/self/cgroup");
  std::string line;
  double best = 0;
  while (std::getline(in, line)) {
    // "ID:CONTROLLERS:PATH"; v2 is "0::PATH".
    const size_t a = line.find(':'), b = a == std::string::npos ? a : line.find(':', a + 1);
    if (b == std::string::npos) continue;
    const std::string controllers = line.substr(a + 1, b - a - 1), path = line.substr(b + 1);
    if (controllers.empty()) {
      // Inside a container the cgroup namespace makes PATH "/" and the mount is its own cgroup.
      for (const fs::path& dir : up_to(base / "sys/fs/cgroup", path))
        tighten(v2_quota(dir), dir / "cpu.max", &best, source);
      continue;
    }
    std::istringstream names(controllers);
    std::string name;
    bool cpu = false;
    while (std::getline(names, name, ',')) cpu = cpu || name == "cpu";
    if (!cpu) continue;
    // v1 mounts the cpu controller at cpu,cpuacct (or cpu); a container sees its own cgroup at
    // the mount's top while PATH is the host's, so every existing level is read.
    for (const std::string& mount : {controllers, std::string("cpu"), std::string("cpu,cpuacct")})
      for (const fs::path& dir : up_to(base / "sys/fs/cgroup" / mount, path))
        tighten(v1_quota(dir), dir / "cpu.cfs_quota_us", &best, source);
  }
  return best;
}

CpuBudget make_cpu_budget(int affinity_cpus, double quota_cpus, std::string quota_source) {
  CpuBudget b;
  b.affinity_cpus = std::max(1, affinity_cpus);
  b.quota_cpus = quota_cpus > 0 ? quota_cpus : 0;
  b.quota_source = b.quota_cpus > 0 ? std::move(quota_source) : "";
  b.threads = b.affinity_cpus;
  if (b.quota_cpus > 0)
    b.threads = std::min(b.threads, static_cast<int>(std::ceil(b.quota_cpus - 1e-9)));
  b.threads = std::max(1, b.threads);
  return b;
}

CpuBudget process_cpu_budget() {
  cpu_set_t set;
  CPU_ZERO(&set);
  int affinity = 1;
  if (sched_getaffinity(0, sizeof set, &set) == 0) affinity = CPU_COUNT(&set);
  std::string source;
  const double quota = cgroup_cpu_quota("/", &source);
  return make_cpu_budget(affinity, quota, source);
}

std::string CpuBudget::describe() const {
  return std::to_string(threads) + " (" + sources() + ")";
}

std::string CpuBudget::sources() const {
  char quota[64];
  if (quota_cpus > 0)
    std::snprintf(quota, sizeof quota, "%.2f CPUs", quota_cpus);
  else
    std::snprintf(quota, sizeof quota, "none");
  return "affinity " + std::to_string(affinity_cpus) + " CPU" + (affinity_cpus == 1 ? "" : "s") +
         ", cgroup quota " + quota;
}

}  // namespace ecgq
