// The capacity planner (planner/, `ecgq plan`) on small traffics whose answer is known by hand:
// the real BrokerCore and SleepPolicy on simulated time give the cold starts, wakes, queueing
// and worker-hours the settings imply.
#include <gtest/gtest.h>

#include <fstream>

#include "planner/plan.hpp"
#include "tests/support/process.hpp"

namespace ecgq::planner {
namespace {

using namespace std::chrono_literals;

// A profile with round numbers: 100 ms loads, 50 ms per segment, no preprocessing.
ServiceProfile round_profile() {
  ServiceProfile p;
  p.name = "test";
  p.load_ms = 100;
  p.forward_ms = {0, 50, 100, 150, 200};
  return p;
}

std::vector<Arrival> at(std::initializer_list<double> times, int segments = 1) {
  std::vector<Arrival> out;
  for (double t : times) out.push_back({t, segments});
  return out;
}

TEST(PlannerProfile, ForwardTimesInterpolateBetweenAndBeyondMeasuredSizes) {
  ServiceProfile p;
  p.forward_ms = {0, 10, 0, 0, 40};
  EXPECT_DOUBLE_EQ(p.forward(1), 10);
  EXPECT_DOUBLE_EQ(p.forward(2), 20);
  EXPECT_DOUBLE_EQ(p.forward(4), 40);
  EXPECT_DOUBLE_EQ(p.forward(6), 60);
  auto fp32 = default_profile("fp32");
  ASSERT_TRUE(fp32.ok());
  EXPECT_NEAR(fp32->forward(2), 363, 1);
  EXPECT_FALSE(default_profile("int4").ok());
}

TEST(PlannerProfile, AFileRoundTripsAndBadFilesNameTheField) {
  test::TempDir dir;
  ServiceProfile p = round_profile();
  ASSERT_TRUE(write_profile(p, dir.file("p.json")).ok());
  auto back = read_profile(dir.file("p.json"));
  ASSERT_TRUE(back.ok()) << back.status().to_string();
  EXPECT_DOUBLE_EQ(back->load_ms, 100);
  EXPECT_DOUBLE_EQ(back->forward(3), 150);
  std::ofstream(dir.file("bad.json")) << R"({"load_ms": 5, "forward_ms": {"two": 3}})";
  auto bad = read_profile(dir.file("bad.json"));
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("forward_ms key two"), std::string::npos);
}

TEST(PlannerArrivals, RatesTracesAndPoissonCounts) {
  EXPECT_DOUBLE_EQ(*parse_rate("2/min"), 2.0 / 60);
  EXPECT_DOUBLE_EQ(*parse_rate("0.5"), 0.5);
  EXPECT_DOUBLE_EQ(*parse_rate("36/h"), 0.01);
  EXPECT_FALSE(parse_rate("3/fortnight").ok());
  EXPECT_FALSE(parse_rate("fast").ok());
  test::TempDir dir;
  std::ofstream(dir.file("t.csv")) << "t_seconds,segments\n5\n1,4\n# a comment\n3\n";
  auto trace = make_arrivals(dir.file("t.csv"), 0, 2, 1);
  ASSERT_TRUE(trace.ok()) << trace.status().to_string();
  ASSERT_EQ(trace->size(), 3u);
  EXPECT_DOUBLE_EQ((*trace)[0].t_s, 1);
  EXPECT_EQ((*trace)[0].segments, 4);
  EXPECT_EQ((*trace)[2].segments, 2);
  std::ofstream(dir.file("bad.csv")) << "1\nsoon\n";
  EXPECT_FALSE(make_arrivals(dir.file("bad.csv"), 0, 2, 1).ok());
  // 10,000 expected arrivals: the count is within 5% (deterministic for a given seed).
  auto many = make_arrivals("poisson:10/s", 1000, 2, 7);
  ASSERT_TRUE(many.ok());
  EXPECT_NEAR(static_cast<double>(many->size()), 10000, 500);
  auto day = make_arrivals("diurnal:60/min,0/min", 86400, 2, 7);
  ASSERT_TRUE(day.ok());
  size_t night = 0, afternoon = 0;
  for (const Arrival& a : *day) {
    const double hour = a.t_s / 3600;
    night += hour >= 1 && hour < 3;
    afternoon += hour >= 13 && hour < 15;
  }
  EXPECT_GT(afternoon, 20 * night);
}

TEST(PlannerSimulation, JobsAfterTheIdleTimeoutPayAColdStart) {
  ClusterSpec c;
  c.idle_timeout = 60s;
  // Warm at 0-2; asleep by 100 (a wake); 101 finds it warm again; asleep again by 400.
  const auto r = simulate(c, round_profile(), at({0, 1, 2, 100, 101, 400}), 500);
  EXPECT_EQ(r.jobs, 6);
  EXPECT_EQ(r.ok, 6);
  EXPECT_EQ(r.cold_starts, 2);
  EXPECT_EQ(r.wakes, 2);
  // Warm jobs take the forward pass; cold ones the load first.
  EXPECT_NEAR(r.p50_ms, 50, 1);
  EXPECT_NEAR(r.max_ms, 150, 1);
  // Awake: 0-62 s, 100-161 s and 400-460 s, about 183 s of 500.
  EXPECT_NEAR(r.worker_hours_awake * 3600, 183, 2);
  EXPECT_NEAR((r.worker_hours_awake + r.worker_hours_asleep) * 3600, 500, 1);
}

TEST(PlannerSimulation, KeepWarmAndALongerIdleTimeoutRemoveTheColdStarts) {
  ClusterSpec c;
  c.idle_timeout = 60s;
  c.keep_warm = 1;
  EXPECT_EQ(simulate(c, round_profile(), at({0, 1, 2, 100, 101, 400}), 500).cold_starts, 0);
  c.keep_warm = 0;
  c.idle_timeout = 10min;
  const auto r = simulate(c, round_profile(), at({0, 1, 2, 100, 101, 400}), 500);
  EXPECT_EQ(r.cold_starts, 0);
  EXPECT_NEAR(r.worker_hours_awake * 3600, 500, 1);
}

TEST(PlannerSimulation, WorkersThatStartAsleepWakeForTheFirstJob) {
  ClusterSpec c;
  c.initial_warm = false;
  const auto r = simulate(c, round_profile(), at({10, 11}), 20);
  EXPECT_EQ(r.cold_starts, 1);
  EXPECT_EQ(r.wakes, 1);
  EXPECT_NEAR(r.max_ms, 150, 1);
}

TEST(PlannerSimulation, ABurstQueuesInTheBrokerAndMaxQueueRefusesTheRest) {
  ClusterSpec c;
  c.capacity = 1;
  c.max_batch = 1;
  std::vector<Arrival> burst(50, Arrival{0, 1});
  auto r = simulate(c, round_profile(), burst, 10);
  EXPECT_EQ(r.ok, 50);
  // The first is dispatched as it arrives; the other 49 wait in the broker.
  EXPECT_EQ(r.peak_queue, 49);
  // One at a time, 50 ms each: the last waits for the 49 before it.
  EXPECT_NEAR(r.max_ms, 50 * 50, 5);
  c.max_queue = 10;
  r = simulate(c, round_profile(), burst, 10);
  EXPECT_GT(r.queue_full, 0);
  EXPECT_EQ(r.ok + r.queue_full, 50);
}

TEST(PlannerSimulation, TwoWorkersHalveTheQueueingOfABurst) {
  ClusterSpec c;
  c.capacity = 1;
  c.max_batch = 1;
  std::vector<Arrival> burst(40, Arrival{0, 1});
  const auto one = simulate(c, round_profile(), burst, 10);
  c.workers = 2;
  const auto two = simulate(c, round_profile(), burst, 10);
  EXPECT_NEAR(two.max_ms, one.max_ms / 2, 60);
}

}  // namespace
}  // namespace ecgq::planner
