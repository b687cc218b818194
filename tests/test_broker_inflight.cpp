// Nothing stuck, on the fake clock: max_job_time takes a job back, deadlines hold after
// dispatch, the broker caps a worker's credit, worker-side failures are retried elsewhere (input
// errors never), a failing worker is taken out of dispatch, exhausted jobs go to the dead-letter
// list, and wait_for_worker_ms bounds a job's wait for a worker.
#include <gtest/gtest.h>
#include <spdlog/spdlog.h>

#include "tests/broker_core_harness.hpp"

namespace ecgq::broker {
namespace {

using namespace std::chrono_literals;
using test::Core;
using test::kClientA;
using test::kWorker1;
using test::kWorker2;

// The core logs every event at info; the assertions say what matters here.
const bool kQuiet = [] {
  spdlog::set_level(spdlog::level::warn);
  return true;
}();

// A config with max_job_time of 1 s.
BrokerConfig one_second_jobs() {
  BrokerConfig c = test::test_config();
  c.max_job_time = 1000ms;
  c.max_attempts = 5;
  return c;
}

// Moves the clock by `total` in heartbeat-sized steps, every listed worker heartbeating, and
// returns every action on the way.
Actions run(Core& c, std::chrono::milliseconds total, const std::vector<std::string>& workers) {
  Actions all;
  for (auto t = 0ms; t < total; t += 50ms) {
    for (const auto& w : workers) c.heartbeat(w);
    auto out = c.advance(50ms);
    all.insert(all.end(), out.begin(), out.end());
  }
  return all;
}

// The token of the only REQUEST sent to `worker` in `out`.
std::string token_to(const Actions& out, const std::string& worker) {
  auto reqs = Core::requests(out, worker);
  EXPECT_EQ(reqs.size(), 1u);
  return reqs.empty() ? std::string() : reqs[0].at(2);
}

TEST(BrokerInflight, MaxJobTimeTakesTheJobToAnotherWorkerAndHoldsTheFirstBack) {
  Core c(one_second_jobs());
  c.ready(kWorker1, test::ready_meta("w1"));
  const std::string stuck = token_to(c.submit(kClientA, test::job_body("j1")), kWorker1);
  c.ready(kWorker2, test::ready_meta("w2"));
  auto out = run(c, 1050ms, {kWorker1, kWorker2});
  auto again = Core::requests(out, kWorker2);
  ASSERT_EQ(again.size(), 1u);
  EXPECT_EQ(test::job_of(again[0]).id, "j1");
  EXPECT_EQ(test::job_of(again[0]).dispatch->attempt, 2);
  EXPECT_TRUE(Core::finals(out, kClientA).empty());
  EXPECT_NE(c.status().services["ecg-fm"].workers.at(0).out_of_dispatch, "");
  // The held-back worker gets nothing new, though it has a free slot.
  EXPECT_TRUE(Core::requests(c.submit(kClientA, test::job_body("j2")), kWorker1).empty());
  out = c.final(kWorker2, again[0][2], test::ok_result("j1"));
  ASSERT_EQ(Core::finals(out, kClientA).size(), 1u);
  EXPECT_EQ(test::job_of(Core::requests(out, kWorker2).at(0)).id, "j2");
  // Its late FINAL is dropped and proves it alive: it takes jobs again.
  out = c.final(kWorker1, stuck, test::ok_result("j1"));
  EXPECT_TRUE(Core::finals(out, kClientA).empty());
  EXPECT_EQ(c.core.counters().dropped_duplicates, 1);
  EXPECT_EQ(Core::requests(c.submit(kClientA, test::job_body("j3")), kWorker1).size(), 1u);
}

TEST(BrokerInflight, AServiceMayHaveItsOwnMaxJobTime) {
  Settings s;
  declare_settings(s);
  ASSERT_TRUE(s.set("service_max_job_time", "ecg-fm=30s,slow=2h", "test").ok());
  auto config = load_config(s);
  ASSERT_TRUE(config.ok()) << config.status().to_string();
  EXPECT_EQ(config->job_time_limit("ecg-fm"), Millis(30000));
  EXPECT_EQ(config->job_time_limit("slow"), Millis(7200000));
  EXPECT_EQ(config->job_time_limit("other"), Millis(600000));
  ASSERT_TRUE(s.set("service_max_job_time", "ecg-fm", "test").ok());
  EXPECT_EQ(load_config(s).status().field(), "service_max_job_time");
}

TEST(BrokerInflight, TheDeadlineHoldsAfterDispatchAndALateFinalIsDropped) {
  Core c;
  c.ready(kWorker1);
  const std::string token = token_to(c.submit(kClientA, test::job_body("d1", 100)), kWorker1);
  auto out = run(c, 150ms, {kWorker1});
  auto finals = Core::finals(out, kClientA);
  ASSERT_EQ(finals.size(), 1u);
  EXPECT_EQ(test::code_of(finals[0]), "deadline_exceeded");
  EXPECT_EQ(test::result_of(finals[0]).error->field, "deadline_ms");
  // The worker still holds the job's slot until it answers; its answer is dropped.
  EXPECT_TRUE(Core::requests(c.submit(kClientA, test::job_body("next")), kWorker1).empty());
  out = c.final(kWorker1, token, test::ok_result("d1"));
  EXPECT_TRUE(Core::finals(out, kClientA).empty());
  EXPECT_EQ(test::job_of(Core::requests(out, kWorker1).at(0)).id, "next");
}

TEST(BrokerInflight, DeadlinesAreZeroForNoneAndBoundedToThirtyDays) {
  Core c;
  c.ready(kWorker1, test::ready_meta("w1", 4));
  EXPECT_EQ(Core::requests(c.submit(kClientA, test::job_body("none", 0)), kWorker1).size(), 1u);
  EXPECT_TRUE(Core::finals(run(c, 200ms, {kWorker1}), kClientA).empty());
  for (int64_t bad : {int64_t{-1}, schema::kMaxJobBudgetMs + 1, int64_t{10000000000000}}) {
    auto finals = Core::finals(c.submit(kClientA, test::job_body("bad", bad)), kClientA);
    ASSERT_EQ(finals.size(), 1u) << bad;
    EXPECT_EQ(test::code_of(finals[0]), "bad_request");
    EXPECT_EQ(test::result_of(finals[0]).error->field, "deadline_ms");
  }
}

TEST(BrokerInflight, TheBrokerCapsAWorkersCredit) {
  BrokerConfig config = test::test_config();
  config.max_worker_capacity = 3;
  Core c(config);
  for (int i = 0; i < 5; ++i) c.submit(kClientA, test::job_body("c" + std::to_string(i)));
  EXPECT_EQ(Core::requests(c.ready(kWorker1, test::ready_meta("w1", 1000)), kWorker1).size(), 3u);
  EXPECT_EQ(c.status().services["ecg-fm"].workers.at(0).capacity, 3);
  ext::WorkerStatus more;
  more.capacity = 500;
  EXPECT_TRUE(
      Core::requests(c.heartbeat(kWorker1, ext::encode_worker_status(more)), kWorker1).empty());
}

TEST(BrokerInflight, AWorkersOwnFailureIsRetriedOnAnotherWorker) {
  Core c;
  c.ready(kWorker1, test::ready_meta("w1"));
  c.ready(kWorker2, test::ready_meta("w2"));
  const std::string t1 = token_to(c.submit(kClientA, test::job_body("m1")), kWorker1);
  // Worker 1 is free again when its failure arrives, and registered first: the retry still
  // goes to worker 2.
  auto out = c.final(kWorker1, t1, schema::error_result("m1", "model_error", "CUDA error"));
  EXPECT_TRUE(Core::finals(out, kClientA).empty());
  EXPECT_TRUE(Core::requests(out, kWorker1).empty()) << "another worker is preferred";
  auto retry = Core::requests(out, kWorker2);
  ASSERT_EQ(retry.size(), 1u);
  EXPECT_EQ(test::job_of(retry[0]).dispatch->attempt, 2);
  out = c.final(kWorker2, retry[0][2], test::ok_result("m1"));
  auto finals = Core::finals(out, kClientA);
  ASSERT_EQ(finals.size(), 1u);
  EXPECT_EQ(test::code_of(finals[0]), "");
  EXPECT_EQ(c.core.counters().redispatched, 1);
  EXPECT_EQ(c.status().services["ecg-fm"].workers.at(0).failures_in_row, 1);
}

TEST(BrokerInflight, ARetryWaitsForABusyWorkerRatherThanGoBackToTheOneThatFailedIt) {
  Core c;
  c.ready(kWorker1, test::ready_meta("w1"));
  c.ready(kWorker2, test::ready_meta("w2"));
  const std::string t1 = token_to(c.submit(kClientA, test::job_body("m1")), kWorker1);
  const std::string t2 = token_to(c.submit(kClientA, test::job_body("m2")), kWorker2);
  auto out = c.final(kWorker1, t1, schema::error_result("m1", "internal", "oops"));
  EXPECT_TRUE(Core::requests(out, kWorker1).empty()) << "w1 failed m1: m1 waits for w2";
  // w1 still takes other jobs meanwhile.
  EXPECT_EQ(
      test::job_of(Core::requests(c.submit(kClientA, test::job_body("m3")), kWorker1).at(0)).id,
      "m3");
  out = c.final(kWorker2, t2, test::ok_result("m2"));
  auto retry = Core::requests(out, kWorker2);
  ASSERT_EQ(retry.size(), 1u);
  EXPECT_EQ(test::job_of(retry[0]).id, "m1");
  EXPECT_EQ(test::job_of(retry[0]).dispatch->attempt, 2);
}

TEST(BrokerInflight, ModelErrorsOfAWorkerReportingFailedWaitForItsRetryLoadNotARegistration) {
  Core c;
  c.ready(kWorker1, test::ready_meta("w1", 3, WorkerState::Asleep));
  std::vector<std::string> tokens;
  for (const char* id : {"f1", "f2", "f3"})
    tokens.push_back(token_to(c.submit(kClientA, test::job_body(id)), kWorker1));
  // The wake found the model unloadable: the worker reports failed before its FINALs.
  ext::WorkerStatus failed;
  failed.state = WorkerState::Failed;
  failed.reason = "model file truncated";
  c.heartbeat(kWorker1, ext::encode_worker_status(failed));
  for (size_t i = 0; i < tokens.size(); ++i) {
    auto out = c.final(kWorker1, tokens[i],
                       schema::error_result("f" + std::to_string(i + 1), "model_error", "no"));
    EXPECT_TRUE(Core::finals(out, kClientA).empty()) << "the job waits for a worker";
    EXPECT_TRUE(Core::requests(out, kWorker1).empty()) << "a failed worker gets no job";
  }
  const auto w1 = c.status().services["ecg-fm"].workers.at(0);
  EXPECT_EQ(w1.failures_in_row, 0);
  EXPECT_EQ(w1.out_of_dispatch, "");
  // Its retry load succeeds: the waiting jobs go back to it, with no re-registration.
  ext::WorkerStatus warm;
  warm.state = WorkerState::Warm;
  auto out = c.heartbeat(kWorker1, ext::encode_worker_status(warm));
  auto retries = Core::requests(out, kWorker1);
  ASSERT_EQ(retries.size(), 3u);
  EXPECT_EQ(test::job_of(retries[0]).dispatch->attempt, 2);
}

TEST(BrokerInflight, InputErrorsAreNeverRetried) {
  Core c;
  c.ready(kWorker1, test::ready_meta("w1"));
  c.ready(kWorker2, test::ready_meta("w2"));
  for (const char* code : {"too_short", "missing_leads", "bad_samples", "bad_request"}) {
    const std::string t = token_to(c.submit(kClientA, test::job_body(code)), kWorker1);
    auto out = c.final(kWorker1, t, schema::error_result(code, code, "input"));
    auto finals = Core::finals(out, kClientA);
    ASSERT_EQ(finals.size(), 1u) << code;
    EXPECT_EQ(test::code_of(finals[0]), code);
    EXPECT_TRUE(Core::requests(out, kWorker2).empty()) << code;
  }
  EXPECT_EQ(c.status().services["ecg-fm"].workers.at(0).failures_in_row, 0);
}

TEST(BrokerInflight, GarbageFinalsAndFinalsNamingAnotherJobAreWorkerFailures) {
  Core c(one_second_jobs());
  c.ready(kWorker1, test::ready_meta("w1"));
  std::string t = token_to(c.submit(kClientA, test::job_body("g1")), kWorker1);
  // Alone, the failing worker gets the retry; a third failure takes it out of dispatch.
  auto out = c.final(kWorker1, t, "\xc1 not msgpack");
  t = token_to(out, kWorker1);
  out = c.final(kWorker1, t, test::ok_result("someone-else"));
  t = token_to(out, kWorker1);
  out = c.received(kWorker1, mdp::worker_reply_frames(mdp::WorkerCommand::Final, t, {"a", "b"}));
  EXPECT_TRUE(Core::finals(out, kClientA).empty());
  EXPECT_TRUE(Core::requests(out, kWorker1).empty());
  const auto w1 = c.status().services["ecg-fm"].workers.at(0);
  EXPECT_EQ(w1.failures_in_row, 3);
  EXPECT_NE(w1.out_of_dispatch.find("bad_result"), std::string::npos) << w1.out_of_dispatch;
  // A healthy worker gets the job (attempt 4); the failing one only after it re-registers.
  out = c.ready(kWorker2, test::ready_meta("w2"));
  ASSERT_EQ(test::job_of(Core::requests(out, kWorker2).at(0)).dispatch->attempt, 4);
  c.ready(kWorker1, test::ready_meta("w1"));
  EXPECT_EQ(Core::requests(c.submit(kClientA, test::job_body("g2")), kWorker1).size(), 1u);
}

TEST(BrokerInflight, ExhaustedJobsGoToTheBoundedDeadLetterList) {
  BrokerConfig config = test::test_config();
  config.max_attempts = 2;
  config.dead_letter_max = 1;
  Core c(config);
  c.ready(kWorker1, test::ready_meta("w1"));
  c.ready(kWorker2, test::ready_meta("w2"));
  for (const std::string id : {"x1", "x2"}) {
    const std::string t1 = token_to(c.submit(kClientA, test::job_body(id)), kWorker1);
    auto out = c.final(kWorker1, t1, schema::error_result(id, "model_error", "bad weights"));
    const std::string t2 = token_to(out, kWorker2);
    out = c.final(kWorker2, t2, schema::error_result(id, "internal", "oops"));
    auto finals = Core::finals(out, kClientA);
    ASSERT_EQ(finals.size(), 1u);
    EXPECT_EQ(test::code_of(finals[0]), "internal");
    EXPECT_EQ(test::result_of(finals[0]).attempts, 2);
  }
  const auto status = c.status();
  ASSERT_EQ(status.dead_letters.size(), 1u) << "dead_letter_max keeps the newest";
  const ext::DeadLetter& d = status.dead_letters[0];
  EXPECT_EQ(d.id, "x2");
  EXPECT_EQ(d.service, "ecg-fm");
  EXPECT_EQ(d.code, "internal");
  ASSERT_EQ(d.attempts.size(), 2u);
  EXPECT_EQ(d.attempts[0].worker, "w1");
  EXPECT_EQ(d.attempts[0].code, "model_error");
  EXPECT_EQ(d.attempts[0].message, "bad weights");
  EXPECT_EQ(d.attempts[1].worker, "w2");
  EXPECT_EQ(d.attempts[1].code, "internal");
}

TEST(BrokerInflight, WaitForWorkerBoundsTheWaitWithinServiceWait) {
  Core c;  // service_wait 1000 ms
  schema::Job shortly = schema::decode_job(test::job_body("short")).value();
  shortly.wait_for_worker_ms = 200;
  c.submit(kClientA, schema::encode_job(shortly));
  schema::Job long_wait = schema::decode_job(test::job_body("long")).value();
  long_wait.wait_for_worker_ms = 60000;
  c.submit(kClientA, schema::encode_job(long_wait));
  auto finals = Core::finals(c.advance(230ms), kClientA);
  ASSERT_EQ(finals.size(), 1u);
  EXPECT_EQ(test::result_of(finals[0]).id, "short");
  EXPECT_EQ(test::code_of(finals[0]), "no_worker");
  finals = Core::finals(c.advance(800ms), kClientA);
  ASSERT_EQ(finals.size(), 1u) << "capped by service_wait";
  EXPECT_EQ(test::result_of(finals[0]).id, "long");
  // Any service's body may carry it (a misspelled service name is not an ecgq service).
  c.request(kClientA, "ecgfm", {schema::encode_job(shortly)});
  finals = Core::finals(c.advance(230ms), kClientA);
  ASSERT_EQ(finals.size(), 1u);
  EXPECT_EQ(test::code_of(finals[0]), "no_worker");
}

}  // namespace
}  // namespace ecgq::broker
