// The CPU budget behind `threads: 0`: cgroup v1 and v2 quota files written in a temp dir (the
// parser takes a root path), and the rounding from quota to threads.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <random>

#include "common/cpu_budget.hpp"

namespace {

namespace fs = std::filesystem;
using ecgq::cgroup_cpu_quota;
using ecgq::make_cpu_budget;

// A fake root (proc/self/cgroup, sys/fs/cgroup/...) removed at the end of the test.
class FakeRoot {
 public:
  FakeRoot() {
    std::random_device rd;
    dir_ = fs::temp_directory_path() / ("ecgq-cpu-budget-" + std::to_string(rd()));
    fs::create_directories(dir_);
  }
  ~FakeRoot() {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  // Writes `text` to the file at `relative` below the root, creating its directories.
  void write(const std::string& relative, const std::string& text) const {
    fs::path p = dir_ / relative;
    fs::create_directories(p.parent_path());
    std::ofstream(p) << text;
  }
  std::string path() const { return dir_.string(); }

 private:
  fs::path dir_;
};

TEST(CpuBudget, NoCgroupFileMeansNoQuota) {
  FakeRoot root;
  std::string source = "unchanged";
  EXPECT_EQ(cgroup_cpu_quota(root.path(), &source), 0.0);
  EXPECT_EQ(source, "unchanged");
}

TEST(CpuBudget, V2MaxMeansNoQuota) {
  FakeRoot root;
  root.write("proc/self/cgroup", "0::/\n");
  root.write("sys/fs/cgroup/cpu.max", "max 100000\n");
  EXPECT_EQ(cgroup_cpu_quota(root.path()), 0.0);
}

TEST(CpuBudget, V2QuotaOfTheContainersOwnCgroup) {
  FakeRoot root;
  root.write("proc/self/cgroup", "0::/\n");
  root.write("sys/fs/cgroup/cpu.max", "150000 100000\n");
  std::string source;
  EXPECT_DOUBLE_EQ(cgroup_cpu_quota(root.path(), &source), 1.5);
  EXPECT_EQ(source, (fs::path(root.path()) / "sys/fs/cgroup/cpu.max").string());
}

TEST(CpuBudget, V2TightestQuotaOnThePathToTheRoot) {
  FakeRoot root;
  root.write("proc/self/cgroup", "0::/kubepods/pod1/ctr\n");
  root.write("sys/fs/cgroup/kubepods/cpu.max", "400000 100000\n");
  root.write("sys/fs/cgroup/kubepods/pod1/cpu.max", "250000 100000\n");
  root.write("sys/fs/cgroup/kubepods/pod1/ctr/cpu.max", "max 100000\n");
  std::string source;
  EXPECT_DOUBLE_EQ(cgroup_cpu_quota(root.path(), &source), 2.5);
  EXPECT_NE(source.find("kubepods/pod1/cpu.max"), std::string::npos) << source;
}

TEST(CpuBudget, V1QuotaOfTheCpuController) {
  FakeRoot root;
  root.write("proc/self/cgroup", "4:memory:/docker/abc\n3:cpu,cpuacct:/docker/abc\n0::/\n");
  // Inside the container the host path does not exist: the mount's top is its cgroup.
  root.write("sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us", "50000\n");
  root.write("sys/fs/cgroup/cpu,cpuacct/cpu.cfs_period_us", "100000\n");
  std::string source;
  EXPECT_DOUBLE_EQ(cgroup_cpu_quota(root.path(), &source), 0.5);
  EXPECT_NE(source.find("cpu.cfs_quota_us"), std::string::npos) << source;
}

TEST(CpuBudget, V1MinusOneMeansNoQuota) {
  FakeRoot root;
  root.write("proc/self/cgroup", "2:cpu:/\n");
  root.write("sys/fs/cgroup/cpu/cpu.cfs_quota_us", "-1\n");
  root.write("sys/fs/cgroup/cpu/cpu.cfs_period_us", "100000\n");
  EXPECT_EQ(cgroup_cpu_quota(root.path()), 0.0);
}

TEST(CpuBudget, MalformedFilesAreIgnored) {
  FakeRoot root;
  root.write("proc/self/cgroup", "garbage\n0::/\n1:cpu:/\n");
  root.write("sys/fs/cgroup/cpu.max", "lots 100000\n");
  root.write("sys/fs/cgroup/cpu/cpu.cfs_quota_us", "12abc\n");
  root.write("sys/fs/cgroup/cpu/cpu.cfs_period_us", "0\n");
  EXPECT_EQ(cgroup_cpu_quota(root.path()), 0.0);
}

TEST(CpuBudget, ThreadsAreTheSmallerRoundedUpAtLeastOne) {
  EXPECT_EQ(make_cpu_budget(2, 0, "").threads, 2);
  EXPECT_EQ(make_cpu_budget(8, 1.5, "f").threads, 2);
  EXPECT_EQ(make_cpu_budget(8, 2.0, "f").threads, 2);
  EXPECT_EQ(make_cpu_budget(2, 6.0, "f").threads, 2);
  EXPECT_EQ(make_cpu_budget(4, 0.1, "f").threads, 1);
  EXPECT_EQ(make_cpu_budget(0, 0, "").threads, 1);
  EXPECT_EQ(make_cpu_budget(2, 0, "").describe(), "2 (affinity 2 CPUs, cgroup quota none)");
  EXPECT_EQ(make_cpu_budget(8, 1.5, "f").describe(), "2 (affinity 8 CPUs, cgroup quota 1.50 CPUs)");
}

TEST(CpuBudget, ThisProcessHasAtLeastOneThread) {
  const ecgq::CpuBudget b = ecgq::process_cpu_budget();
  EXPECT_GE(b.threads, 1);
  EXPECT_LE(b.threads, b.affinity_cpus);
}

}  // namespace
