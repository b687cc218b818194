// The broker core's global bounds on a fake clock: max_services, max_queued_bytes, and a
// retry_after_ms that follows the measured drain rate. (Per-service bounds are in
// test_broker_core.cpp; the process-level hostile bodies in test_broker_hostile.cpp.)
#include <gtest/gtest.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <string>
#include <vector>

#include "broker/core.hpp"
#include "protocol/admission.hpp"
#include "protocol/schema.hpp"
#include "tests/broker_core_harness.hpp"

namespace ecgq::broker {
namespace {

using namespace std::chrono_literals;
using mdp::Frames;

const std::string kClient = std::string(1, '\0') + "client";
const std::string kWorker = std::string(1, '\0') + "worker";

// A generic-service request body of `bytes` bytes.
Frames body_of(size_t bytes) {
  return {std::string(bytes, 'x')};
}

// The shared fake-clock core (tests/broker_core_harness.hpp) with this file's two questions: the
// FINAL error a generic request gets, and the tokens dispatched to the worker.
struct Harness : test::Core {
  explicit Harness(BrokerConfig c) : Core(std::move(c)) { spdlog::set_level(spdlog::level::warn); }

  // The FINAL error of a request to `service`, or nullopt when it got none (it was queued).
  std::optional<schema::ErrorInfo> request(const std::string& service, size_t bytes = 10) {
    for (const Frames& f : finals(Core::request(kClient, service, body_of(bytes)), kClient)) {
      if (f.size() < 4) continue;
      auto r = schema::decode_result(f[3]);
      EXPECT_TRUE(r.ok() && r->error);
      return r.ok() && r->error ? r->error : std::nullopt;
    }
    return std::nullopt;
  }
  // Tokens of the REQUESTs sent to the worker.
  std::vector<std::string> dispatched(const Actions& actions) {
    std::vector<std::string> tokens;
    for (const Frames& f : requests(actions, kWorker))
      if (f.size() >= 3) tokens.push_back(f[2]);
    return tokens;
  }
};

BrokerConfig config() {
  BrokerConfig c;
  c.heartbeat_interval = 1h;  // nobody expires during these tests
  c.service_wait = 1h;
  return c;
}

TEST(BrokerBounds, MaxServicesRefusesANewServiceAndNamesTheBound) {
  BrokerConfig c = config();
  c.max_services = 3;
  Harness h(c);
  EXPECT_FALSE(h.request("s1"));
  EXPECT_FALSE(h.request("s2"));
  EXPECT_FALSE(h.request("s3"));
  auto e = h.request("s4");
  ASSERT_TRUE(e);
  EXPECT_EQ(e->code, "queue_full");
  EXPECT_NE(e->message.find("max_services=3"), std::string::npos) << e->message;
  EXPECT_EQ(e->retry_after_ms, 1000);
  // Known services still take jobs.
  EXPECT_FALSE(h.request("s2"));
}

TEST(BrokerBounds, AReadyForANewServiceCountsTowardMaxServices) {
  BrokerConfig c = config();
  c.max_services = 2;
  Harness h(c);
  const std::string other = std::string(1, '\0') + "other";
  const std::string third = std::string(1, '\0') + "third";
  const char disconnect = static_cast<char>(mdp::WorkerCommand::Disconnect);
  EXPECT_FALSE(h.request("s1"));  // queued: s1 is known
  EXPECT_TRUE(
      Harness::sent(h.ready(kWorker, test::ready_meta("w"), "s2"), kWorker, disconnect).empty());
  // A third service named by a worker is refused with DISCONNECT and a refusal naming the bound.
  const Actions out = h.ready(third, test::ready_meta("w3"), "s3");
  const auto refusals = Harness::sent(out, third, disconnect);
  ASSERT_EQ(refusals.size(), 1u);
  ASSERT_EQ(refusals[0].size(), 3u);
  auto refusal = ext::decode_refusal(refusals[0][2]);
  ASSERT_TRUE(refusal.ok()) << refusal.status().to_string();
  EXPECT_EQ(refusal->code, "queue_full");
  EXPECT_NE(refusal->message.find("max_services=2"), std::string::npos) << refusal->message;
  EXPECT_EQ(h.status().services.count("s3"), 0u);
  // So is a job for it; known services keep serving, and a worker of a known one is admitted.
  auto e = h.request("s3");
  ASSERT_TRUE(e);
  EXPECT_EQ(e->code, "queue_full");
  EXPECT_TRUE(
      Harness::sent(h.ready(other, test::ready_meta("w1"), "s1"), other, disconnect).empty());
  EXPECT_EQ(h.status().services.at("s1").workers.size(), 1u);
  EXPECT_EQ(h.dispatched(h.test::Core::request(kClient, "s2", body_of(10))).size(), 1u);
}

TEST(BrokerBounds, MaxQueuedBytesCountsEveryServiceAndNamesTheBound) {
  BrokerConfig c = config();
  c.max_queued_bytes = 1000;
  Harness h(c);
  EXPECT_FALSE(h.request("a", 400));
  EXPECT_FALSE(h.request("b", 400));
  auto e = h.request("c", 400);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->code, "queue_full");
  EXPECT_NE(e->message.find("max_queued_bytes=1000"), std::string::npos) << e->message;
  EXPECT_FALSE(h.request("c", 200));  // what still fits is taken
}

TEST(BrokerBounds, DispatchedJobsNoLongerCountAsQueuedBytes) {
  BrokerConfig c = config();
  c.max_queued_bytes = 1000;
  Harness h(c);
  EXPECT_FALSE(h.request("svc", 900));
  EXPECT_TRUE(h.request("svc", 900));
  auto out = h.received(kWorker, mdp::ready_frames("svc"));
  ASSERT_EQ(h.dispatched(out).size(), 1u);
  EXPECT_FALSE(h.request("svc", 900));
}

// Steady load: one worker finishing a job every `interval`; the refused job's retry_after_ms
// must be within 2x of the time the backlog really takes to drain.
void expect_retry_after_tracks_the_drain(std::chrono::milliseconds interval) {
  BrokerConfig c = config();
  c.max_queue = 20;
  Harness h(c);
  for (int i = 0; i < 20; ++i) ASSERT_FALSE(h.request("svc"));
  auto tokens = h.dispatched(h.received(kWorker, mdp::ready_frames("svc")));
  for (int done = 0; done < 10; ++done) {
    ASSERT_EQ(tokens.size(), 1u);
    h.now += interval;
    tokens = h.dispatched(
        h.received(kWorker, mdp::worker_reply_frames(mdp::WorkerCommand::Final, tokens[0], {"r"})));
    ASSERT_FALSE(h.request("svc"));  // keep the queue at 19
  }
  ASSERT_FALSE(h.request("svc"));  // 20: full
  auto e = h.request("svc");
  ASSERT_TRUE(e);
  ASSERT_TRUE(e->retry_after_ms);
  // 20 queued + 1 in flight drain in 21 intervals.
  const double drain_ms = 21.0 * static_cast<double>(interval.count());
  EXPECT_GE(static_cast<double>(*e->retry_after_ms), drain_ms / 2);
  EXPECT_LE(static_cast<double>(*e->retry_after_ms), drain_ms * 2);
}

TEST(BrokerBounds, RetryAfterTracksTheMeasuredDrainRate) {
  expect_retry_after_tracks_the_drain(80ms);
  expect_retry_after_tracks_the_drain(2000ms);
}

TEST(BrokerBounds, IdleGapsDoNotSlowTheMeasuredDrain) {
  BrokerConfig c = config();
  c.max_queue = 4;
  Harness h(c);
  std::vector<std::string> tokens;
  h.received(kWorker, mdp::ready_frames("svc"));
  for (int round = 0; round < 5; ++round) {
    // Two jobs 100 ms apart, then an hour with nothing to do.
    ASSERT_FALSE(h.request("svc"));
    ASSERT_FALSE(h.request("svc"));
    tokens = h.dispatched(h.received(kWorker, mdp::ready_frames("svc")));
    for (int k = 0; k < 2; ++k) {
      ASSERT_EQ(tokens.size(), 1u);
      h.now += 100ms;
      tokens = h.dispatched(h.received(
          kWorker, mdp::worker_reply_frames(mdp::WorkerCommand::Final, tokens[0], {"r"})));
    }
    h.now += 1h;
  }
  for (int i = 0; i < 5; ++i) ASSERT_FALSE(h.request("svc"));  // 1 in flight, 4 queued
  auto e = h.request("svc");
  ASSERT_TRUE(e && e->retry_after_ms);
  EXPECT_LE(*e->retry_after_ms, 5 * 100 * 2) << "an idle hour counted as a slow drain";
}

}  // namespace
}  // namespace ecgq::broker
