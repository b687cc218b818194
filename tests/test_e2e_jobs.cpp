// End to end through real processes: many jobs over two workers, a worker killed mid-job, and a
// worker that falls asleep and wakes up.
#include <csignal>
#include <set>

#include "tests/test_e2e_cluster.hpp"

namespace ecgq::test {
namespace {

TEST(E2eJobs, ManyJobsThroughTwoWorkersEachAnsweredOnce) {
  ECGQ_REQUIRE_BINARIES("ecgq-broker", "ecgq-worker");
  // The same record 200 times: without the result cache, so that every job reaches a worker.
  Broker broker({"--result-cache-entries", "0"});
  ASSERT_TRUE(broker.ready) << broker.diagnostics();
  auto w1 = start_worker(broker.endpoint, "w1");
  auto w2 = start_worker(broker.endpoint, "w2");
  auto c = connect(broker.endpoint);
  ASSERT_TRUE(wait_workers(*c, {"w1", "w2"})) << w1->stderr_text() << w2->stderr_text();

  constexpr int kJobs = 200;
  constexpr size_t kWindow = 64;
  const schema::Job job = ecg_job(2500);
  std::set<std::string> submitted;
  std::map<std::string, int> finals;
  std::set<std::string> workers;
  int sent = 0;
  const auto until = std::chrono::steady_clock::now() + 120s;
  while ((sent < kJobs || c->outstanding() > 0) && std::chrono::steady_clock::now() < until) {
    while (sent < kJobs && c->outstanding() < kWindow) {
      auto id = c->submit(job);
      ASSERT_TRUE(id.ok()) << id.status().to_string();
      EXPECT_TRUE(submitted.insert(*id).second) << "duplicate id " << *id;
      ++sent;
    }
    auto ev = c->poll(100ms);
    ASSERT_TRUE(ev.ok()) << ev.status().to_string();
    if (!ev->has_value() || !(*ev)->result) continue;
    const schema::Result& r = *(*ev)->result;
    ++finals[r.id];
    EXPECT_EQ(r.status, "ok") << r.id << " " << (r.error ? r.error->message : "");
    EXPECT_EQ(r.probs.size(), 17u);
    EXPECT_EQ(r.attempts, 1);
    workers.insert(r.worker_id);
  }
  EXPECT_EQ(sent, kJobs);
  EXPECT_EQ(finals.size(), submitted.size()) << "jobs lost";
  for (const auto& [id, n] : finals) {
    EXPECT_EQ(n, 1) << id << " answered " << n << " times";
    EXPECT_EQ(submitted.count(id), 1u) << "answer for a job never sent: " << id;
  }
  // Both workers were warm with 64 jobs queued, so both took some.
  EXPECT_EQ(workers, (std::set<std::string>{"w1", "w2"}));
}

TEST(E2eJobs, WorkerKilledMidJobCompletesOnTheOtherWithTwoAttempts) {
  ECGQ_REQUIRE_BINARIES("ecgq-broker", "ecgq-worker");
  Broker broker;
  ASSERT_TRUE(broker.ready) << broker.diagnostics();
  std::map<std::string, std::unique_ptr<ChildProcess>> workers;
  workers["wa"] = start_worker(broker.endpoint, "wa");
  workers["wb"] = start_worker(broker.endpoint, "wb");
  auto c = connect(broker.endpoint);
  ASSERT_TRUE(wait_workers(*c, {"wa", "wb"}));

  // A long record keeps the worker busy long enough to be killed while it runs.
  auto id = c->submit(ecg_job_i16(500 * 300));
  ASSERT_TRUE(id.ok()) << id.status().to_string();
  std::string running_on;
  std::optional<schema::Result> early;
  ASSERT_TRUE(wait_until(
      [&] {
        auto ev = c->poll(50ms);
        if (ev.ok() && ev->has_value() && (*ev)->progress && (*ev)->progress->event == "running") {
          running_on = (*ev)->progress->worker_id;
        }
        if (ev.ok() && ev->has_value() && (*ev)->result) early = (*ev)->result;
        return !running_on.empty() || early.has_value();
      },
      60s));
  ASSERT_FALSE(early.has_value()) << "finished before it could be killed: " << early->status << " "
                                  << (early->error ? early->error->message : "");
  ASSERT_EQ(workers.count(running_on), 1u) << "running on unknown worker " << running_on;
  workers[running_on]->signal(SIGKILL);
  const std::string other = running_on == "wa" ? "wb" : "wa";

  auto r = wait_result(*c, *id, 120s);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, "ok") << (r->error ? r->error->message : "");
  EXPECT_EQ(r->attempts, 2);
  EXPECT_EQ(r->worker_id, other);
  EXPECT_EQ(r->n_segments, 60);
  // The lost worker is gone from the service; the survivor still serves.
  EXPECT_TRUE(wait_until([&] { return worker_states(*c).count(running_on) == 0; }, 10s));
  auto next = run_job(*c, ecg_job());
  ASSERT_TRUE(next.has_value());
  EXPECT_EQ(next->status, "ok");
  EXPECT_EQ(next->attempts, 1);
}

TEST(E2eJobs, IdleWorkerSleepsAndTheNextJobWakesIt) {
  ECGQ_REQUIRE_BINARIES("ecgq-broker", "ecgq-worker");
  Broker broker;
  ASSERT_TRUE(broker.ready) << broker.diagnostics();
  auto w = start_worker(broker.endpoint, "sleepy", {"--idle-timeout", "300ms"});
  auto c = connect(broker.endpoint);
  // Warm on start, then idle past the timeout: asleep, as mmi.status reports.
  ASSERT_TRUE(wait_workers(*c, {"sleepy"}, "asleep")) << w->stderr_text();

  auto first = run_job(*c, ecg_job());
  ASSERT_TRUE(first.has_value());
  EXPECT_EQ(first->status, "ok");
  EXPECT_TRUE(first->cold_start);
  EXPECT_GT(first->timings.wake_ms, 0);

  auto second = run_job(*c, ecg_job(5000));  // another record: computed, not a cache hit
  ASSERT_TRUE(second.has_value());
  EXPECT_EQ(second->status, "ok");
  EXPECT_FALSE(second->cached);
  EXPECT_FALSE(second->cold_start);
  EXPECT_EQ(second->timings.wake_ms, 0);
}

}  // namespace
}  // namespace ecgq::test
