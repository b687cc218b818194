// Long file: the broker core's rules, each a short test on a fake clock
// (tests/broker_core_harness.hpp). BrokerCore driven with no processes and no sockets: events in
// (messages, ticks, failed sends, stop), actions out, time injected. The process-level tests
// (test_broker_*.cpp) prove the wiring; these prove the rules, fast and deterministically.
#include <gtest/gtest.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <map>
#include <string>
#include <vector>

#include "tests/broker_core_harness.hpp"

namespace ecgq::broker {
namespace {

using namespace std::chrono_literals;
using mdp::Frames;

// The core logs every event at info; the assertions say what matters here.
const bool kQuiet = [] {
  spdlog::set_level(spdlog::level::warn);
  return true;
}();

using namespace test;  // the harness: Core, jobs, results, READY metadata

// ------------------------------------------------------------------------------- dispatch

TEST(BrokerCore, AJobGoesStraightToAWarmWorkerWithAttemptAndQueuedTime) {
  Core c;
  c.ready(kWorker1, ready_meta("w1"));
  auto out = c.submit(kClientA, job_body("j1"));
  auto reqs = Core::requests(out, kWorker1);
  ASSERT_EQ(reqs.size(), 1u);
  EXPECT_EQ(reqs[0][2].size(), 8u);  // the job token
  auto job = job_of(reqs[0]);
  EXPECT_EQ(job.id, "j1");
  ASSERT_TRUE(job.dispatch);
  EXPECT_EQ(job.dispatch->attempt, 1);
  EXPECT_EQ(job.dispatch->queued_ms, 0);
  EXPECT_TRUE(Core::partials(out, kClientA).empty()) << "dispatched at once: no queued PARTIAL";
  out = c.final(kWorker1, reqs[0][2], ok_result("j1"));
  auto finals = Core::finals(out, kClientA);
  ASSERT_EQ(finals.size(), 1u);
  EXPECT_EQ(result_of(finals[0]).id, "j1");
  EXPECT_EQ(c.core.counters().completed, 1);
}

TEST(BrokerCore, QueuedTimeIsMeasuredOnTheInjectedClock) {
  Core c;
  auto out = c.submit(kClientA, job_body("j1"));
  auto partials = Core::partials(out, kClientA);
  ASSERT_EQ(partials.size(), 1u);
  EXPECT_EQ(progress_of(partials[0]).event, "queued");
  EXPECT_EQ(progress_of(partials[0]).position, 0);
  c.advance(250ms);
  out = c.ready(kWorker1);
  auto reqs = Core::requests(out, kWorker1);
  ASSERT_EQ(reqs.size(), 1u);
  EXPECT_DOUBLE_EQ(job_of(reqs[0]).dispatch->queued_ms, 250.0);
}

TEST(BrokerCore, AssignedIdsAndGenericServicesAreForwardedAsIs) {
  Core c;
  c.ready(kWorker1, {}, "echo");
  auto out = c.request(kClientA, "echo", {"a", "b"});
  auto reqs = Core::requests(out, kWorker1);
  ASSERT_EQ(reqs.size(), 1u);
  EXPECT_EQ(Frames(reqs[0].begin() + 4, reqs[0].end()), (Frames{"a", "b"}));
  c.ready(kWorker2);
  out = c.submit(kClientB, job_body(""));
  reqs = Core::requests(out, kWorker2);
  ASSERT_EQ(reqs.size(), 1u);
  EXPECT_EQ(job_of(reqs[0]).id, "b1-1");  // from the id source (the loop: 128 random bits)
}

TEST(BrokerCore, RoundRobinAcrossClientsFifoWithinOne) {
  Core c;
  for (const char* id : {"a1", "a2", "a3"}) c.submit(kClientA, job_body(id));
  auto out = c.submit(kClientB, job_body("b1"));
  EXPECT_EQ(progress_of(Core::partials(out, kClientB).at(0)).position, 1);  // behind a1 only
  std::vector<std::string> order;
  out = c.ready(kWorker1);
  for (int i = 0; i < 4; ++i) {
    auto reqs = Core::requests(out, kWorker1);
    ASSERT_EQ(reqs.size(), 1u) << "capacity 1: one job at a time";
    order.push_back(job_of(reqs[0]).id);
    out = c.final(kWorker1, reqs[0][2], ok_result(order.back()));
    if (i == 3) {
      EXPECT_TRUE(Core::requests(out, kWorker1).empty());
    }
  }
  EXPECT_EQ(order, (std::vector<std::string>{"a1", "b1", "a2", "a3"}));
}

TEST(BrokerCore, CapacityIsCreditAndAFinalFreesASlot) {
  Core c;
  c.ready(kWorker1, ready_meta("w1", 2));
  std::vector<Frames> reqs;
  for (const char* id : {"c1", "c2", "c3"}) {
    auto r = Core::requests(c.submit(kClientA, job_body(id)), kWorker1);
    reqs.insert(reqs.end(), r.begin(), r.end());
  }
  ASSERT_EQ(reqs.size(), 2u);
  EXPECT_NE(reqs[0][2], reqs[1][2]);
  auto out = c.final(kWorker1, reqs[0][2], ok_result("c1"));
  auto next = Core::requests(out, kWorker1);
  ASSERT_EQ(next.size(), 1u);
  EXPECT_EQ(job_of(next[0]).id, "c3");
}

TEST(BrokerCore, OneReadyDispatchesEveryJobItHasCreditFor) {
  Core c;
  for (const char* id : {"x1", "x2", "x3"}) c.submit(kClientA, job_body(id));
  auto out = c.ready(kWorker1, ready_meta("w1", 3));
  EXPECT_EQ(Core::requests(out, kWorker1).size(), 3u);
}

TEST(BrokerCore, TheLeastLoadedWarmWorkerIsPreferredThenTheFirstRegistered) {
  Core c;
  c.ready(kWorker1, ready_meta("w1", 2));
  c.ready(kWorker2, ready_meta("w2", 3));
  EXPECT_EQ(Core::requests(c.submit(kClientA, job_body("l1")), kWorker2).size(), 1u);
  // Both have two free slots now: the first registered wins the tie.
  EXPECT_EQ(Core::requests(c.submit(kClientA, job_body("l2")), kWorker1).size(), 1u);
  EXPECT_EQ(Core::requests(c.submit(kClientA, job_body("l3")), kWorker2).size(), 1u);
}

TEST(BrokerCore, WarmBeatsWarmingBeatsAsleep) {
  Core c;
  c.ready(kWorker1, ready_meta("sleepy", 4, WorkerState::Asleep));
  c.ready(kWorker2, ready_meta("loading", 1, WorkerState::Warming));
  const std::string w3 = std::string(1, '\0') + "worker-3";
  c.ready(w3, ready_meta("warm", 1, WorkerState::Warm));
  EXPECT_EQ(Core::requests(c.submit(kClientA, job_body("p1")), w3).size(), 1u);
  EXPECT_EQ(Core::requests(c.submit(kClientA, job_body("p2")), kWorker2).size(), 1u);
  EXPECT_EQ(Core::requests(c.submit(kClientA, job_body("p3")), kWorker1).size(), 1u);
}

// ------------------------------------------------------------------------------ deadlines

TEST(BrokerCore, AQueuedJobExpiresAtItsDeadlineOnTheTick) {
  Core c;
  c.submit(kClientA, job_body("d1", 150));
  EXPECT_TRUE(Core::finals(c.advance(140ms), kClientA).empty());
  // The expiry sweep runs every 20 ms of ticks: the next one is at 160 ms.
  EXPECT_TRUE(Core::finals(c.advance(10ms), kClientA).empty());
  auto finals = Core::finals(c.advance(10ms), kClientA);
  ASSERT_EQ(finals.size(), 1u);
  EXPECT_EQ(code_of(finals[0]), "deadline_exceeded");
  EXPECT_EQ(result_of(finals[0]).id, "d1");
  EXPECT_EQ(result_of(finals[0]).error->field, "deadline_ms");
  // Expired once: a worker arriving later gets nothing.
  EXPECT_TRUE(Core::requests(c.ready(kWorker1), kWorker1).empty());
}

TEST(BrokerCore, AJobWhoseDeadlinePassedIsNotDispatchedAndNothingFollowsItsFinal) {
  Core c;
  c.submit(kClientA, job_body("zero", 1));
  c.submit(kClientA, job_body("next"));
  c.now += 5ms;
  auto out = c.ready(kWorker1);  // before any tick: the dispatch pass applies the same rule
  auto finals = Core::finals(out, kClientA);
  ASSERT_EQ(finals.size(), 1u);
  EXPECT_EQ(code_of(finals[0]), "deadline_exceeded");
  auto reqs = Core::requests(out, kWorker1);
  ASSERT_EQ(reqs.size(), 1u);
  EXPECT_EQ(job_of(reqs[0]).id, "next");
  EXPECT_TRUE(Core::partials(out, kClientA).empty());
}

// Deadlines after dispatch: tests/test_broker_inflight.cpp.

TEST(BrokerCore, NoWorkerAfterServiceWait) {
  Core c;
  c.submit(kClientA, job_body("n1"));
  c.request(kClientB, "plain", {"x"});
  EXPECT_TRUE(Core::finals(c.advance(990ms), kClientA).empty());
  auto out = c.advance(20ms);
  ASSERT_EQ(Core::finals(out, kClientA).size(), 1u);
  EXPECT_EQ(code_of(Core::finals(out, kClientA)[0]), "no_worker");
  auto generic = Core::finals(out, kClientB);
  ASSERT_EQ(generic.size(), 1u);
  EXPECT_EQ(code_of(generic[0]), "no_worker");
  EXPECT_EQ(result_of(generic[0]).id, "");  // generic services: no ecgq id
}

// ------------------------------------------------------------ liveness and re-dispatch

TEST(BrokerCore, ASilentWorkerExpiresAndItsJobGoesToAnotherWithAttempt2) {
  Core c;
  c.ready(kWorker1);
  auto first = Core::requests(c.submit(kClientA, job_body("r1")), kWorker1);
  ASSERT_EQ(first.size(), 1u);
  c.ready(kWorker2, ready_meta("w2", 1));
  c.advance(200ms);
  c.heartbeat(kWorker2);
  // Worker 1 was last heard at registration: 300 ms (3 x 100 ms) later it is gone.
  auto out = c.advance(100ms);
  auto again = Core::requests(out, kWorker2);
  ASSERT_EQ(again.size(), 1u);
  EXPECT_EQ(job_of(again[0]).id, "r1");
  EXPECT_EQ(job_of(again[0]).dispatch->attempt, 2);
  EXPECT_NE(again[0][2], first[0][2]) << "a fresh token per dispatch";
  EXPECT_EQ(c.core.counters().redispatched, 1);
  // Its late FINAL is answered with DISCONNECT, not forwarded.
  out = c.final(kWorker1, first[0][2], ok_result("stale"));
  EXPECT_TRUE(Core::disconnects(out, kWorker1));
  EXPECT_TRUE(Core::finals(out, kClientA).empty());
}

TEST(BrokerCore, MaxAttemptsEndsInWorkerLost) {
  BrokerConfig config = test_config();
  config.max_attempts = 2;
  Core c(config);
  c.ready(kWorker1);
  ASSERT_EQ(Core::requests(c.submit(kClientA, job_body("m1")), kWorker1).size(), 1u);
  auto out = c.received(kWorker1, mdp::disconnect_frames());  // attempt 1 lost
  EXPECT_TRUE(Core::finals(out, kClientA).empty());
  out = c.ready(kWorker2);
  ASSERT_EQ(job_of(Core::requests(out, kWorker2).at(0)).dispatch->attempt, 2);
  auto finals = Core::finals(c.advance(300ms), kClientA);  // attempt 2 lost by heartbeat expiry
  ASSERT_EQ(finals.size(), 1u);
  auto r = result_of(finals[0]);
  EXPECT_EQ(r.id, "m1");
  EXPECT_EQ(r.error->code, "worker_lost");
  EXPECT_EQ(r.attempts, 2);
}

TEST(BrokerCore, DuplicateAndUnknownFinalsAreDroppedAndCounted) {
  Core c;
  c.ready(kWorker1);
  auto req = Core::requests(c.submit(kClientA, job_body("x1")), kWorker1).at(0);
  EXPECT_EQ(Core::finals(c.final(kWorker1, req[2], ok_result("x1")), kClientA).size(), 1u);
  EXPECT_TRUE(Core::finals(c.final(kWorker1, req[2], ok_result("dup")), kClientA).empty());
  EXPECT_TRUE(
      Core::finals(c.final(kWorker1, std::string(8, '\x7f'), ok_result("?")), kClientA).empty());
  EXPECT_EQ(c.core.counters().dropped_duplicates, 2);
  EXPECT_EQ(c.core.counters().completed, 1);
}

TEST(BrokerCore, ASecondReadyRequeuesWhatTheWorkerHadInFlight) {
  Core c;
  c.ready(kWorker1);
  auto first = Core::requests(c.submit(kClientA, job_body("rr")), kWorker1).at(0);
  auto out = c.ready(kWorker1);
  auto second = Core::requests(out, kWorker1);
  ASSERT_EQ(second.size(), 1u);
  EXPECT_EQ(job_of(second[0]).dispatch->attempt, 2);
  EXPECT_TRUE(Core::finals(c.final(kWorker1, first[2], ok_result("stale")), kClientA).empty());
  EXPECT_EQ(Core::finals(c.final(kWorker1, second[0][2], ok_result("rr")), kClientA).size(), 1u);
}

TEST(BrokerCore, AReconnectedWorkerRetiresItsOldRegistrationAtOnce) {
  Core c;
  c.ready(kWorker1, ready_meta("same", 1));
  ASSERT_EQ(Core::requests(c.submit(kClientA, job_body("j1")), kWorker1).size(), 1u);
  auto out = c.ready(kWorker2, ready_meta("same", 1));  // same worker_id, pid and host
  auto again = Core::requests(out, kWorker2);
  ASSERT_EQ(again.size(), 1u);
  EXPECT_EQ(job_of(again[0]).dispatch->attempt, 2);
  EXPECT_EQ(c.status().services.at("ecg-fm").workers.size(), 1u);
}

TEST(BrokerCore, AnUndeliveredRequestCostsNoAttemptAndDropsTheWorker) {
  Core c;
  c.ready(kWorker1, ready_meta("gone", 2));
  Actions out = c.submit(kClientA, job_body("u1"));
  auto more = c.submit(kClientA, job_body("u2"));
  out.insert(out.end(), more.begin(), more.end());
  std::vector<Send> failed;
  for (auto& a : out)
    if (auto* s = std::get_if<Send>(&a); s && s->peer == kWorker1) failed.push_back(*s);
  ASSERT_EQ(failed.size(), 2u);
  out = c.core.handle(Undelivered{failed, c.now});
  EXPECT_EQ(c.core.counters().dispatched, 0);
  EXPECT_EQ(c.core.counters().redispatched, 0);
  out = c.ready(kWorker2, ready_meta("next", 2));
  auto reqs = Core::requests(out, kWorker2);
  ASSERT_EQ(reqs.size(), 2u);
  EXPECT_EQ(job_of(reqs[0]).id, "u1");
  EXPECT_EQ(job_of(reqs[0]).dispatch->attempt, 1);
  EXPECT_EQ(job_of(reqs[1]).id, "u2");
  EXPECT_EQ(c.status().services.at("ecg-fm").workers.size(), 1u);
}

TEST(BrokerCore, UnknownWorkersAreToldToDisconnectAndMmiServicesAreRefused) {
  Core c;
  EXPECT_TRUE(Core::disconnects(c.heartbeat(kWorker1), kWorker1));
  EXPECT_TRUE(Core::disconnects(c.ready(kWorker2, {}, "mmi.status"), kWorker2));
  EXPECT_EQ(c.mmi("mmi.service", "mmi.status"), "404");
}

// ------------------------------------------------------------------------------- the cache

TEST(BrokerCore, AResultFromAnAgreedModelAnswersTheSameRecordUnderANewId) {
  Core c;
  const std::string sha(64, 'a');
  c.ready(kWorker1, ready_meta("w1", 1, WorkerState::Warm, sha));
  auto req = Core::requests(c.submit(kClientA, job_body("first", {}, 1.5f)), kWorker1).at(0);
  c.final(kWorker1, req[2], ok_result("first", sha));
  c.advance(10ms);
  const std::string meta = "\x81\xa1k\xa1v";  // {k: "v"}
  auto out = c.submit(kClientB, job_body("second", {}, 1.5f, meta));
  EXPECT_TRUE(Core::requests(out, kWorker1).empty()) << "a hit never reaches a worker";
  auto finals = Core::finals(out, kClientB);
  ASSERT_EQ(finals.size(), 1u);
  auto r = result_of(finals[0]);
  EXPECT_EQ(r.id, "second");
  EXPECT_TRUE(r.cached);
  EXPECT_FALSE(r.cold_start);
  EXPECT_EQ(r.attempts, 0);
  EXPECT_EQ(r.meta, meta);
  EXPECT_EQ(r.model.sha256, sha);
  EXPECT_EQ(r.probs, (std::vector<float>{0.25f}));
  EXPECT_EQ(r.timings.total_ms, 0);
  // Another record misses.
  EXPECT_EQ(Core::requests(c.submit(kClientB, job_body("third", {}, 2.5f)), kWorker1).size(), 1u);
  auto s = c.status().result_cache;
  EXPECT_EQ(s.hits, 1);
  EXPECT_EQ(s.misses, 2);
  EXPECT_EQ(s.entries, 1);
}

TEST(BrokerCore, NoLookupWhileWorkersDisagreeAndErrorsAreNeverCached) {
  Core c;
  // One model (a service serves one), two precisions: results depend on the worker.
  c.ready(kWorker1, ready_meta("w1", 1, WorkerState::Warm, std::string(64, 'a')));
  ext::ReadyMetadata bf16;
  bf16.worker_id = "w2";
  bf16.model = schema::ModelIdentity{"ecgfm", "m.pt", std::string(64, 'a'), "bf16"};
  c.ready(kWorker2, ext::encode_ready(bf16));
  auto out = c.submit(kClientA, job_body("e1"));
  auto req = Core::requests(out, kWorker1).at(0);
  c.final(kWorker1, req[2], schema::error_result("e1", "too_short", "short"));
  EXPECT_EQ(c.core.counters().errors.at("too_short"), 1);
  EXPECT_EQ(c.status().result_cache.hits + c.status().result_cache.misses, 0);
  EXPECT_EQ(c.status().result_cache.entries, 0);
}

TEST(BrokerCore, ACachedResultIsServedEvenWhenTheQueueIsFull) {
  BrokerConfig config = test_config();
  config.max_queue = 1;
  Core c(config);
  const std::string sha(64, 'c');
  c.ready(kWorker1, ready_meta("w1", 1, WorkerState::Warm, sha));
  auto req = Core::requests(c.submit(kClientA, job_body("fill", {}, 3.f)), kWorker1).at(0);
  c.final(kWorker1, req[2], ok_result("fill", sha));
  c.submit(kClientA, job_body("busy1", {}, 4.f));  // in flight
  c.submit(kClientA, job_body("busy2", {}, 5.f));  // queued: the queue is full
  EXPECT_EQ(code_of(Core::finals(c.submit(kClientB, job_body("nope", {}, 6.f)), kClientB).at(0)),
            "queue_full");
  auto hit = Core::finals(c.submit(kClientB, job_body("hit", {}, 3.f)), kClientB);
  ASSERT_EQ(hit.size(), 1u);
  EXPECT_TRUE(result_of(hit[0]).cached);
}

TEST(BrokerCore, CachedResultsExpireAfterTheirTtl) {
  BrokerConfig config = test_config();
  config.result_cache_ttl = 1000ms;
  Core c(config);
  const std::string sha(64, 'd');
  c.ready(kWorker1, ready_meta("w1", 1, WorkerState::Warm, sha));
  auto req = Core::requests(c.submit(kClientA, job_body("t1", {}, 7.f)), kWorker1).at(0);
  c.final(kWorker1, req[2], ok_result("t1", sha));
  for (int i = 0; i < 10; ++i) {
    c.advance(100ms);
    c.heartbeat(kWorker1);
  }
  EXPECT_EQ(c.status().result_cache.entries, 0);
  EXPECT_EQ(c.status().result_cache.expirations, 1);
}

// ----------------------------------------------------------------------- sleep and wake

TEST(BrokerCore, AnAsleepWorkerIsWokenByAJobAndTheClientIsTold) {
  Core c;
  c.ready(kWorker1, ready_meta("sleepy", 1, WorkerState::Asleep));
  auto out = c.submit(kClientA, job_body("z1"));
  auto reqs = Core::requests(out, kWorker1);
  ASSERT_EQ(reqs.size(), 1u);
  auto partials = Core::partials(out, kClientA);
  ASSERT_EQ(partials.size(), 1u);
  EXPECT_EQ(progress_of(partials[0]).event, "waking");
  EXPECT_EQ(progress_of(partials[0]).worker_id, "sleepy");
  EXPECT_EQ(c.status().services.at("ecg-fm").workers.at(0).state, "waking");
  // The worker reports warming, then warm: "busy" while it holds the job.
  c.heartbeat(kWorker1, ext::encode_worker_status({WorkerState::Warming, 1, 0, 1, 1, {}}));
  EXPECT_EQ(c.status().services.at("ecg-fm").workers.at(0).state, "warming");
  c.heartbeat(kWorker1, ext::encode_worker_status({WorkerState::Warm, 1, 0, 1, 1, {}}));
  EXPECT_EQ(c.status().services.at("ecg-fm").workers.at(0).state, "busy");
  // A second job waits for the slot and then goes without a wake-up.
  out = c.submit(kClientA, job_body("z2"));
  EXPECT_EQ(progress_of(Core::partials(out, kClientA).at(0)).event, "queued");
  out = c.final(kWorker1, reqs[0][2], ok_result("z1"));
  ASSERT_EQ(Core::requests(out, kWorker1).size(), 1u);
  EXPECT_TRUE(Core::partials(out, kClientA).empty());
}

TEST(BrokerCore, ABecomingWarmHeartbeatDispatchesWaitingJobs) {
  Core c;
  c.ready(kWorker1, ready_meta("w1", 1, WorkerState::Warming));
  c.ready(kWorker2, ready_meta("w2", 1, WorkerState::Warming));
  c.submit(kClientA, job_body("h1"));  // to w1 (warming, first registered)
  auto out = c.submit(kClientA, job_body("h2"));
  ASSERT_EQ(Core::requests(out, kWorker2).size(), 1u);
  c.submit(kClientA, job_body("h3"));  // both full: queued
  // More capacity is credit too.
  out = c.heartbeat(kWorker2, ext::encode_worker_status({WorkerState::Warm, 1, 0, 1, 2, {}}));
  auto reqs = Core::requests(out, kWorker2);
  ASSERT_EQ(reqs.size(), 1u);
  EXPECT_EQ(job_of(reqs[0]).id, "h3");
}

TEST(BrokerCore, KeepWarmGoesToTheFirstWorkersOfAnEcgqServiceInHeartbeats) {
  BrokerConfig config = test_config();
  config.keep_warm = 1;
  Core c(config);
  c.ready(kWorker1, ready_meta("w1"));
  c.ready(kWorker2, ready_meta("w2"));
  const std::string strict = std::string(1, '\0') + "strict";
  c.ready(strict);
  auto out = c.advance(100ms);
  auto keep = [&](const std::string& w) {
    auto hb = Core::sent(out, w, static_cast<char>(mdp::WorkerCommand::Heartbeat));
    EXPECT_EQ(hb.size(), 1u);
    if (hb.empty() || hb[0].size() < 3) return std::optional<bool>();
    return ext::decode_broker_heartbeat(hb[0][2])->keep_warm;
  };
  EXPECT_EQ(keep(kWorker1), true);
  EXPECT_EQ(keep(kWorker2), false);
  EXPECT_EQ(keep(strict), std::nullopt) << "a strict RFC worker gets a bare HEARTBEAT";
  auto workers = c.status().services.at("ecg-fm").workers;
  EXPECT_TRUE(workers.at(0).keep_warm);
  EXPECT_FALSE(workers.at(1).keep_warm);
  // When the kept worker leaves, the next one is kept warm.
  c.received(kWorker1, mdp::disconnect_frames());
  out = c.advance(100ms);
  EXPECT_EQ(keep(kWorker2), true);
}

// --------------------------------------------------------------------------------- bounds

TEST(BrokerCore, AFullQueueAnswersQueueFullWithRetryAfter) {
  BrokerConfig config = test_config();
  config.max_queue = 2;
  Core c(config);
  c.submit(kClientA, job_body("q1"));
  c.submit(kClientA, job_body("q2"));
  auto finals = Core::finals(c.submit(kClientA, job_body("q3")), kClientA);
  ASSERT_EQ(finals.size(), 1u);
  auto r = result_of(finals[0]);
  EXPECT_EQ(r.id, "q3");
  EXPECT_EQ(r.error->code, "queue_full");
  // Two queued, no worker and no sample yet: 1 s per job over one slot.
  EXPECT_EQ(r.error->retry_after_ms, 2000);
  EXPECT_EQ(c.core.counters().errors.at("queue_full"), 1);
}

TEST(BrokerCore, ThePerClientBoundLeavesOtherClientsAlone) {
  BrokerConfig config = test_config();
  config.max_queue_per_client = 1;
  Core c(config);
  c.submit(kClientA, job_body("a1"));
  EXPECT_EQ(code_of(Core::finals(c.submit(kClientA, job_body("a2")), kClientA).at(0)),
            "queue_full");
  auto out = c.submit(kClientB, job_body("b1"));
  EXPECT_TRUE(Core::finals(out, kClientB).empty());
  EXPECT_EQ(Core::partials(out, kClientB).size(), 1u);
}

TEST(BrokerCore, BadJobsAndBadFramesAreAnsweredAtOnce) {
  BrokerConfig config = test_config();
  config.max_message_bytes = 1024;
  Core c(config);
  schema::Job bad;
  bad.id = "named";
  bad.ecg = {"f32", {1, 4}, std::string(12, '\0')};
  bad.fs = 500;
  bad.leads = {"I"};
  auto finals = Core::finals(c.submit(kClientA, schema::encode_job(bad)), kClientA);
  ASSERT_EQ(finals.size(), 1u);
  EXPECT_EQ(code_of(finals[0]), "bad_shape");
  EXPECT_EQ(result_of(finals[0]).id, "named");
  EXPECT_EQ(result_of(finals[0]).error->field, "ecg.data");
  EXPECT_EQ(code_of(Core::finals(c.request(kClientA, "ecg-fm", {"a", "b"}), kClientA).at(0)),
            "bad_request");
  EXPECT_EQ(
      code_of(Core::finals(c.request(kClientA, "echo", {std::string(2000, 'x')}), kClientA).at(0)),
      "message_too_large");
  auto out = c.received(kClientA, {"MDPC02", std::string(1, '\x03'), "ecg-fm"});
  EXPECT_EQ(code_of(Core::finals(out, kClientA).at(0)), "bad_frame");
  EXPECT_TRUE(c.received(kClientA, {"nonsense"}).empty());
}

// -------------------------------------------------------------------------------- mmi.*

TEST(BrokerCore, MmiServiceAnswers200Or404And501ForTheRest) {
  Core c;
  EXPECT_EQ(c.mmi("mmi.service", "ecg-fm"), "404");
  c.ready(kWorker1);
  EXPECT_EQ(c.mmi("mmi.service", "ecg-fm"), "200");
  EXPECT_EQ(c.mmi("mmi.nothing", ""), "501");
}

TEST(BrokerCore, MmiStatusReportsServicesWorkersCountersAndUptime) {
  Core c;
  c.ready(kWorker1, ready_meta("w1", 2));
  c.heartbeat(kWorker1, ext::encode_worker_status({WorkerState::Warm, 4096, 0, 0, 2, {}}));
  c.submit(kClientA, job_body("s1"));
  for (int i = 0; i < 15; ++i) {
    c.advance(100ms);
    c.heartbeat(kWorker1);
  }
  c.advance(250ms);
  auto s = c.status();
  EXPECT_EQ(s.uptime_ms, 1750);
  EXPECT_FALSE(s.shutting_down);
  const auto& svc = s.services.at("ecg-fm");
  EXPECT_TRUE(svc.ecgq);
  EXPECT_EQ(svc.in_flight, 1);
  ASSERT_EQ(svc.workers.size(), 1u);
  EXPECT_EQ(svc.workers[0].id, "w1");
  EXPECT_EQ(svc.workers[0].state, "busy");
  EXPECT_EQ(svc.workers[0].capacity, 2);
  EXPECT_EQ(svc.workers[0].rss_bytes, 4096);
  EXPECT_EQ(svc.workers[0].last_heartbeat_ms, 250);
  EXPECT_EQ(svc.workers[0].pid, 100);
  EXPECT_EQ(s.counters.received, 1);
  EXPECT_EQ(s.counters.dispatched, 1);
  EXPECT_TRUE(s.result_cache.enabled);
}

TEST(BrokerCore, MmiCancelRemovesOnlyTheCallersQueuedJobs) {
  Core c;
  for (const char* id : {"a1", "a2", "a3"}) c.submit(kClientA, job_body(id));
  c.submit(kClientB, job_body("b1"));
  auto out = c.request(kClientA, "mmi.cancel", {ext::encode_cancel_request({false, {"a2", "b1"}})});
  auto finals = Core::finals(out, kClientA);
  ASSERT_EQ(finals.size(), 2u);  // the cancelled job's FINAL first, then the reply
  EXPECT_EQ(code_of(finals[0]), "cancelled");
  EXPECT_EQ(result_of(finals[0]).id, "a2");
  auto reply = ext::decode_cancel_reply(finals[1][3]);
  ASSERT_TRUE(reply.ok());
  EXPECT_EQ(reply->cancelled, 1);
  EXPECT_EQ(reply->unknown, 1);
  // A running job is reported as in flight, not recalled.
  c.ready(kWorker1);
  reply = ext::decode_cancel_reply(c.mmi("mmi.cancel", ext::encode_cancel_request({true, {}})));
  ASSERT_TRUE(reply.ok());
  EXPECT_EQ(reply->cancelled, 1);  // a3
  EXPECT_EQ(reply->in_flight, 1);  // a1
  auto bad = ext::decode_cancel_reply(c.mmi("mmi.cancel", "junk"));
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), "bad_request");
  EXPECT_EQ(bad.status().field(), "ids");
}

// ------------------------------------------------------------------------------- shutdown

TEST(BrokerCore, ShutdownAnswersQueuedJobsAndGivesInFlightOnesTheGrace) {
  Core c;
  c.ready(kWorker1);
  auto req = Core::requests(c.submit(kClientA, job_body("s1")), kWorker1).at(0);
  c.submit(kClientA, job_body("s2"));
  auto out = c.core.handle(StopRequested{c.now});
  auto finals = Core::finals(out, kClientA);
  ASSERT_EQ(finals.size(), 1u);
  EXPECT_EQ(result_of(finals[0]).id, "s2");
  EXPECT_EQ(code_of(finals[0]), "shutting_down");
  EXPECT_FALSE(c.core.stopped());
  // New work and new workers are refused while draining.
  EXPECT_EQ(code_of(Core::finals(c.submit(kClientB, job_body("late")), kClientB).at(0)),
            "shutting_down");
  EXPECT_TRUE(Core::disconnects(c.ready(kWorker2), kWorker2));
  // The running job still delivers; then the broker stops on the next tick.
  EXPECT_EQ(code_of(Core::finals(c.final(kWorker1, req[2], ok_result("s1")), kClientA).at(0)), "");
  out = c.tick();
  EXPECT_TRUE(c.core.stopped());
  EXPECT_TRUE(Core::disconnects(out, kWorker1));
}

TEST(BrokerCore, ShutdownGracePassedAnswersWhatIsStillRunning) {
  Core c;
  c.ready(kWorker1);
  c.submit(kClientA, job_body("g1"));
  c.core.handle(StopRequested{c.now});
  for (int i = 0; i < 4; ++i) {
    c.advance(100ms);
    c.heartbeat(kWorker1);
  }
  c.advance(99ms);
  EXPECT_FALSE(c.core.stopped());
  auto out = c.advance(1ms);
  EXPECT_TRUE(c.core.stopped());
  EXPECT_EQ(code_of(Core::finals(out, kClientA).at(0)), "shutting_down");
  EXPECT_TRUE(Core::disconnects(out, kWorker1));
}

TEST(BrokerCore, NextTickIsTheEarliestTimer) {
  Core c;
  EXPECT_LE(c.core.next_tick(), c.now);  // the first expiry sweep is due at once
  c.tick();
  EXPECT_EQ(c.core.next_tick(), c.now + 20ms);
  c.ready(kWorker1);
  c.advance(20ms);
  EXPECT_EQ(c.core.next_tick(), c.now + 20ms);
}

}  // namespace
}  // namespace ecgq::broker
