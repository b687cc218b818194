// How many CPUs this process may use: its affinity mask, limited by a cgroup CPU quota (containers,
// Kubernetes CPU limits). Torch-free, so that the parsing is unit-tested on files in a temp dir.
#pragma once

#include <string>

namespace ecgq {

// The CPUs this process may use and where the figure comes from.
struct CpuBudget {
  int affinity_cpus = 1;     // CPUs in the sched_getaffinity mask
  double quota_cpus = 0;     // cgroup quota / period, 0 when there is no quota
  std::string quota_source;  // the file the quota came from ("" when none)
  int threads = 1;           // min(affinity, quota) rounded up, at least 1

  // One line for logs: "2 (affinity 2 CPUs, cgroup quota none)".
  std::string describe() const;
  // Where the figure comes from: "affinity 2 CPUs, cgroup quota 1.50 CPUs".
  std::string sources() const;
};

// The tightest cgroup CPU quota on the path from this process's cgroup up to the root, in CPUs
// (0 = none), read below `root` ("" or "/" for the real system; tests pass a temp dir holding
// proc/self/cgroup and sys/fs/cgroup/...). cgroup v2 reads cpu.max ("max 100000" or
// "150000 100000"); v1 reads cpu.cfs_quota_us and cpu.cfs_period_us of the cpu controller.
// `source` (optional) receives the file that set the quota.
double cgroup_cpu_quota(const std::string& root, std::string* source = nullptr);

// The budget of this process: sched_getaffinity and cgroup_cpu_quota("/").
CpuBudget process_cpu_budget();

// The budget from given figures (affinity CPUs, quota in CPUs or 0): threads = ceil of the
// smaller, at least 1.
CpuBudget make_cpu_budget(int affinity_cpus, double quota_cpus, std::string quota_source);

}  // namespace ecgq
