// Nothing stuck, through real processes on 127.0.0.1: a black-hole worker and a worker that
// answers garbage, each beside a healthy worker, cost no job; a misspelled service fails fast
// naming the known ones; a deadline holds after dispatch; exhausted jobs reach `ecgq dlq`.
#include <set>

#include "tests/test_e2e_cluster.hpp"

namespace ecgq::test {
namespace {

// The mmi.status entry of worker `id` of ecg-fm (null when absent).
client::Json worker_json(client::Client& c, const std::string& id) {
  const client::Json s = status_json(c);
  if (!s.is_object() || !s.contains("services") || !s["services"].contains("ecg-fm"))
    return nullptr;
  for (const auto& w : s["services"]["ecg-fm"]["workers"])
    if (w.value("id", "") == id) return w;
  return nullptr;
}

// Submits `n` jobs at once and waits for every result; returns them by id.
std::map<std::string, schema::Result> run_jobs(client::Client& c, int n, Millis timeout) {
  std::set<std::string> ids;
  for (int i = 0; i < n; ++i) {
    auto id = c.submit(ecg_job());
    EXPECT_TRUE(id.ok()) << id.status().to_string();
    if (id.ok()) ids.insert(*id);
  }
  std::map<std::string, schema::Result> results;
  const auto until = std::chrono::steady_clock::now() + timeout;
  while (results.size() < ids.size() && std::chrono::steady_clock::now() < until) {
    auto ev = c.poll(100ms);
    if (!ev.ok()) {
      ADD_FAILURE() << ev.status().to_string();
      break;
    }
    if (!ev->has_value() || !(*ev)->result) continue;
    const schema::Result& r = *(*ev)->result;
    EXPECT_TRUE(ids.count(r.id)) << "a result for a job never sent: " << r.id;
    EXPECT_TRUE(results.emplace(r.id, r).second) << r.id << " answered twice";
  }
  EXPECT_EQ(results.size(), ids.size()) << "jobs without an answer";
  return results;
}

TEST(E2eReliability, ABlackHoleWorkerBesideAHealthyOneCostsNoJob) {
  ECGQ_REQUIRE_BINARIES("ecgq-broker", "ecgq-worker");
  // Every job reaches a worker (no result cache); the black hole advertises capacity 1000.
  Broker broker({"--max-job-time", "2s", "--result-cache-entries", "0"});
  ASSERT_TRUE(broker.ready) << broker.diagnostics();
  auto c = connect(broker.endpoint);
  auto hole = start_rogue(broker.endpoint, "blackhole", "hole", 1000);
  ASSERT_TRUE(wait_workers(*c, {"hole"})) << hole->stderr_text();
  auto w1 = start_worker(broker.endpoint, "w1");
  ASSERT_TRUE(wait_workers(*c, {"w1"})) << w1->stderr_text();

  // 2 s of max_job_time plus a generous margin for 20 tiny-model jobs on a loaded machine.
  const auto started = std::chrono::steady_clock::now();
  const auto results = run_jobs(*c, 20, 60s);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  int redispatched = 0;
  for (const auto& [id, r] : results) {
    EXPECT_EQ(r.status, "ok") << id << ": " << (r.error ? r.error->message : "");
    EXPECT_EQ(r.worker_id, "w1");
    redispatched += r.attempts > 1;
  }
  const size_t swallowed = jobs_received(*hole);
  EXPECT_GE(swallowed, 1u) << "the black hole took no job: the test proves nothing";
  EXPECT_LE(swallowed, 8u) << "max_worker_capacity (8) caps the advertised 1000";
  EXPECT_EQ(redispatched, static_cast<int>(swallowed));
  const client::Json h = worker_json(*c, "hole");
  EXPECT_FALSE(h.value("out_of_dispatch", "").empty()) << h.dump();
  EXPECT_EQ(h.value("in_flight", -1), 0) << h.dump();
  std::printf("black hole: %zu of 20 jobs swallowed and re-dispatched; all ok in %.1f s\n",
              swallowed, seconds);
}

TEST(E2eReliability, AGarbageWorkerIsRetriedAroundAndTakenOutAfterThreeFailures) {
  ECGQ_REQUIRE_BINARIES("ecgq-broker", "ecgq-worker");
  Broker broker({"--result-cache-entries", "0"});
  ASSERT_TRUE(broker.ready) << broker.diagnostics();
  auto c = connect(broker.endpoint);
  auto junk = start_rogue(broker.endpoint, "garbage", "junk");
  ASSERT_TRUE(wait_workers(*c, {"junk"})) << junk->stderr_text();
  auto w1 = start_worker(broker.endpoint, "w1");
  ASSERT_TRUE(wait_workers(*c, {"w1"})) << w1->stderr_text();

  // Batches until the garbage worker has failed max_worker_failures (3) jobs in a row.
  int sent = 0;
  while (worker_json(*c, "junk").value("out_of_dispatch", "").empty() && sent < 60) {
    for (const auto& [id, r] : run_jobs(*c, 10, 60s)) {
      EXPECT_EQ(r.status, "ok") << id << ": " << (r.error ? r.error->message : "");
      EXPECT_EQ(r.worker_id, "w1");
    }
    sent += 10;
  }
  const client::Json j = worker_json(*c, "junk");
  EXPECT_NE(j.value("out_of_dispatch", "").find("bad_result"), std::string::npos) << j.dump();
  EXPECT_EQ(j.value("failures_in_row", 0), 3) << j.dump();
  EXPECT_EQ(jobs_received(*junk), 3u);
  // Out of dispatch: later jobs all go to the healthy worker.
  for (const auto& [id, r] : run_jobs(*c, 10, 60s)) EXPECT_EQ(r.status, "ok") << id;
  EXPECT_EQ(jobs_received(*junk), 3u);
  EXPECT_TRUE(wait_until(
      [&] {
        return broker.proc->stderr_text().find("event=worker_out_of_dispatch worker=junk") !=
               std::string::npos;
      },
      5s));
  auto text = run_command({bin("ecgq"), "--broker", broker.endpoint, "status"}, 30s);
  EXPECT_EQ(text.exit_code, 0) << text.err;
  EXPECT_NE(text.out.find("out of dispatch: 3 worker-side failures"), std::string::npos)
      << text.out;
}

TEST(E2eReliability, AMisspelledServiceFailsAtOnceNamingTheKnownServices) {
  ECGQ_REQUIRE_BINARIES("ecgq-broker", "ecgq");
  Broker broker;  // service_wait 60 s
  ASSERT_TRUE(broker.ready) << broker.diagnostics();
  const std::string record = source("tests/data/ecg/1.hea");
  const auto started = std::chrono::steady_clock::now();
  auto r = run_command(
      {bin("ecgq"), "--broker", broker.endpoint, "--service", "ecgfm", "submit", record}, 60s);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_NE(r.out.find("no_worker"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("known services: ecg-fm"), std::string::npos) << r.out;
  EXPECT_LT(seconds, 30.0) << "waited for service_wait instead of failing fast";
  std::printf("misspelled service answered in %.2f s\n", seconds);

  // With --wait-for-worker the job waits that long and the broker's no_worker reaches it.
  r = run_command({bin("ecgq"), "--broker", broker.endpoint, "--service", "ecgfm", "submit",
                   "--wait-for-worker", "1s", record},
                  60s);
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_NE(r.out.find("no_worker"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("wait_for_worker_ms"), std::string::npos) << r.out;
  EXPECT_EQ(broker.proc->stderr_text().find("event=client_gone"), std::string::npos)
      << "the broker's no_worker FINAL was dropped";
}

TEST(E2eReliability, TheDeadlineHoldsWhileAWorkerSitsOnTheJob) {
  ECGQ_REQUIRE_BINARIES("ecgq-broker");
  Broker broker;  // max_job_time 10 min: only the deadline can end the job
  ASSERT_TRUE(broker.ready) << broker.diagnostics();
  auto c = connect(broker.endpoint);
  auto hole = start_rogue(broker.endpoint, "blackhole", "hole");
  ASSERT_TRUE(wait_workers(*c, {"hole"})) << hole->stderr_text();
  schema::Job job = ecg_job();
  job.deadline_ms = 1000;
  auto r = run_job(*c, job, 30s);
  ASSERT_TRUE(r.has_value());
  ASSERT_TRUE(r->error.has_value());
  EXPECT_EQ(r->error->code, "deadline_exceeded") << r->error->message;
  EXPECT_EQ(r->error->field, "deadline_ms");
  EXPECT_EQ(jobs_received(*hole), 1u);
}

TEST(E2eReliability, ExhaustedJobsAreListedByEcgqDlq) {
  ECGQ_REQUIRE_BINARIES("ecgq-broker", "ecgq");
  Broker broker({"--max-attempts", "2", "--max-worker-failures", "10"});
  ASSERT_TRUE(broker.ready) << broker.diagnostics();
  auto c = connect(broker.endpoint);
  auto junk = start_rogue(broker.endpoint, "otherjob", "junk");
  ASSERT_TRUE(wait_workers(*c, {"junk"})) << junk->stderr_text();
  auto r = run_job(*c, ecg_job(), 30s);
  ASSERT_TRUE(r.has_value() && r->error.has_value());
  EXPECT_EQ(r->error->code, "bad_result") << r->error->message;
  EXPECT_EQ(r->attempts, 2);

  auto json = run_command({bin("ecgq"), "--broker", broker.endpoint, "dlq", "--json"}, 30s);
  ASSERT_EQ(json.exit_code, 0) << json.err;
  const auto letters = client::Json::parse(json.out, nullptr, false);
  ASSERT_TRUE(letters.is_array() && letters.size() == 1) << json.out;
  EXPECT_EQ(letters[0].value("id", ""), r->id);
  EXPECT_EQ(letters[0].value("code", ""), "bad_result");
  ASSERT_EQ(letters[0]["attempts"].size(), 2u) << json.out;
  for (const auto& a : letters[0]["attempts"]) {
    EXPECT_EQ(a.value("worker", ""), "junk");
    EXPECT_NE(a.value("message", "").find("not-your-job"), std::string::npos) << a.dump();
  }
  auto text = run_command({bin("ecgq"), "--broker", broker.endpoint, "dlq"}, 30s);
  ASSERT_EQ(text.exit_code, 0) << text.err;
  EXPECT_NE(text.out.find("1 dead-lettered job(s)"), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("2. worker junk  bad_result"), std::string::npos) << text.out;
}

}  // namespace
}  // namespace ecgq::test
