// The planner against reality: a real broker and worker (tiny model, idle_timeout 1 s) take a
// trace of 48 jobs in bursts separated by gaps shorter and longer than the idle timeout; the
// planner, given the same arrival times and a profile calibrated on that worker by
// `ecgq plan --calibrate`, must predict the number of cold starts within 1.
#include <gtest/gtest.h>

#include <fstream>
#include <thread>

#include "planner/plan.hpp"
#include "tests/test_e2e_cluster.hpp"

namespace ecgq::test {
namespace {

TEST(PlannerValidation, PredictsTheColdStartsOfARealClusterWithinOne) {
  ECGQ_REQUIRE_BINARIES("ecgq-broker", "ecgq-worker", "ecgq");
  // Every job has the same samples: without the result cache each one reaches the worker.
  Broker broker({"--result-cache-entries", "0"});
  ASSERT_TRUE(broker.ready) << broker.diagnostics();
  auto worker = start_worker(broker.endpoint, "plan-w1", {"--idle-timeout", "1s"});
  auto c = connect(broker.endpoint);
  ASSERT_TRUE(wait_workers(*c, {"plan-w1"}, "warm", 60s));

  TempDir dir;
  const std::string profile_path = dir.file("profile.json");
  auto calibrated = run_command({bin("ecgq"), "--broker", broker.endpoint, "plan", "--calibrate",
                                 "--out", profile_path, "--repeats", "2"},
                                120s);
  ASSERT_EQ(calibrated.exit_code, 0) << calibrated.err;
  auto profile = planner::read_profile(profile_path);
  ASSERT_TRUE(profile.ok()) << profile.status().to_string();
  // The trace starts with the worker asleep, as the planner is told.
  ASSERT_TRUE(wait_workers(*c, {"plan-w1"}, "asleep", 30s));

  // Six bursts of 8 jobs 0.2 s apart; after each, a gap of 0.4 s (the worker stays warm) or
  // 2.5 s (it falls asleep). The submission times are taken as they really were: the arrivals
  // the planner gets are the ones the broker saw (pacing the trace, not synchronising).
  std::vector<planner::Arrival> arrivals;
  std::vector<std::string> ids;
  const auto t0 = std::chrono::steady_clock::now();
  double next_s = 0;
  for (int burst = 0; burst < 6; ++burst) {
    for (int k = 0; k < 8; ++k) {
      std::this_thread::sleep_until(t0 + std::chrono::duration_cast<std::chrono::nanoseconds>(
                                             std::chrono::duration<double>(next_s)));
      const double sent_s =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      auto id = c->submit(ecg_job(2500));
      ASSERT_TRUE(id.ok()) << id.status().to_string();
      ids.push_back(*id);
      arrivals.push_back({sent_s, 1});
      next_s += 0.2;
    }
    next_s += burst % 2 == 0 ? 2.5 : 0.4;
  }
  int64_t real_cold = 0;
  std::vector<double> real_latency;
  for (const auto& id : ids) {
    auto r = wait_result(*c, id, 60s);
    ASSERT_TRUE(r.has_value());
    ASSERT_EQ(r->status, "ok") << id;
    real_cold += r->cold_start ? 1 : 0;
  }

  planner::ClusterSpec cluster;  // the worker's defaults: capacity 2, max_batch 4
  cluster.idle_timeout = std::chrono::milliseconds(1000);
  cluster.initial_warm = false;
  const auto predicted = planner::simulate(cluster, *profile, arrivals, arrivals.back().t_s);
  std::cout << "planner validation: real cold starts " << real_cold << ", predicted "
            << predicted.cold_starts << " (wakes " << predicted.wakes << ") of " << ids.size()
            << " jobs\n";
  EXPECT_NEAR(static_cast<double>(predicted.cold_starts), static_cast<double>(real_cold), 1.0);
  // Three long gaps plus the asleep start: about four wakes, never none.
  EXPECT_GE(real_cold, 3);
}

TEST(PlannerCli, JsonCarriesTheFiguresAndBadUsageNamesTheOption) {
  ECGQ_REQUIRE_BINARIES("ecgq");
  auto r = run_command({bin("ecgq"), "plan", "--arrivals", "poisson:1/min", "--duration", "2h",
                        "--idle-timeout", "5m", "--json"},
                       60s);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto j = client::Json::parse(r.out, nullptr, false);
  ASSERT_TRUE(j.is_object()) << r.out;
  for (const char* key : {"jobs", "cold_starts", "wakes", "latency_ms", "worker_hours_awake"})
    EXPECT_TRUE(j.contains(key)) << key << " in " << r.out;
  EXPECT_GT(j["jobs"].get<int64_t>(), 60);
  EXPECT_EQ(j["jobs"], j["ok"]);
  EXPECT_NEAR(j["worker_hours_awake"].get<double>() + j["worker_hours_asleep"].get<double>(), 2.0,
              0.01);
  auto sweep = run_command({bin("ecgq"), "plan", "--arrivals", "poisson:1/min", "--duration", "1h",
                            "--sweep", "workers=1,2", "--json"},
                           60s);
  ASSERT_EQ(sweep.exit_code, 0) << sweep.err;
  auto rows = client::Json::parse(sweep.out, nullptr, false);
  ASSERT_TRUE(rows.is_object()) << sweep.out;
  EXPECT_EQ(rows["rows"].size(), 2u);
  // --plot draws the sweep: one polyline for p99, one for worker-hours, a label per value.
  TempDir dir;
  auto plotted =
      run_command({bin("ecgq"), "plan", "--arrivals", "poisson:1/min", "--duration", "1h",
                   "--sweep", "idle-timeout=1m,5m,15m", "--plot", dir.file("sweep.svg")},
                  60s);
  ASSERT_EQ(plotted.exit_code, 0) << plotted.err;
  std::ifstream in(dir.file("sweep.svg"));
  const std::string svg((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_NE(svg.find("<polyline class='p'"), std::string::npos) << svg;
  EXPECT_NE(svg.find("<polyline class='h'"), std::string::npos) << svg;
  for (const char* label : {">1m<", ">5m<", ">15m<"}) EXPECT_NE(svg.find(label), std::string::npos);
  auto unswept = run_command(
      {bin("ecgq"), "plan", "--arrivals", "poisson:1/min", "--plot", dir.file("x.svg")}, 30s);
  EXPECT_EQ(unswept.exit_code, 2) << unswept.err;
  auto bad = run_command({bin("ecgq"), "plan", "--arrivals", "poisson:fast"}, 30s);
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.err.find("--arrivals: rate fast is not a number"), std::string::npos) << bad.err;
  auto sweep_bad =
      run_command({bin("ecgq"), "plan", "--arrivals", "poisson:1/s", "--sweep", "colour=red"}, 30s);
  EXPECT_EQ(sweep_bad.exit_code, 2);
  EXPECT_NE(sweep_bad.err.find("colour is not idle-timeout, workers or keep-warm"),
            std::string::npos)
      << sweep_bad.err;
}

}  // namespace
}  // namespace ecgq::test
