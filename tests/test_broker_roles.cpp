// The broker core's CURVE rules on a fake clock: which role a message needs (a client key may
// not serve, a worker key may not submit, admin mmi.* services are for admin keys), a key removed
// from the lists loses its connections' messages, and jobs belong to the key that submitted them
// (mmi.job, mmi.cancel, client-chosen ids). The sockets' side is tests/test_broker_curve.cpp.
#include <gtest/gtest.h>
#include <spdlog/spdlog.h>

#include "broker/key_role.hpp"
#include "tests/broker_core_harness.hpp"

namespace ecgq::broker::test {
namespace {

const bool kQuiet = [] {
  spdlog::set_level(spdlog::level::off);
  return true;
}();

const std::string kKeyA = "key-of-client-a";
const std::string kKeyB = "key-of-client-b";
const std::string kKeyW = "key-of-the-worker";
const std::string kAdminKey = "admin-key";

// A core with CURVE on (the allow-lists themselves live in the socket side).
BrokerConfig curve_config() {
  BrokerConfig c = test_config();
  c.curve_secret_cert = "broker_secret";
  c.client_keys = "clients";
  return c;
}

// The reply body an mmi.* call got from `key`, "" when the core sent none (a refused key).
std::string mmi(Core& c, const std::string& key, const std::string& service,
                const std::string& body, unsigned roles = kRoleClient) {
  for (const auto& f : Core::finals(c.as(key, roles).request(kClientB, service, {body}), kClientB))
    if (f.at(2) == service) return f.at(3);
  return "";
}

// What mmi.job tells `key` of job `id`.
std::string state_of(Core& c, const std::string& id, const std::string& key,
                     unsigned roles = kRoleClient) {
  auto reply = ext::decode_job_reply(mmi(c, key, "mmi.job", ext::encode_job_query({{id}}), roles));
  return reply.ok() && reply->jobs.size() == 1 ? reply->jobs[0].state : "?";
}

TEST(BrokerRoles, TheRuleNamesWhatEachRoleMayDo) {
  EXPECT_EQ(role_refusal(kRoleClient, false, "ecg-fm"), "");
  EXPECT_EQ(role_refusal(kRoleClient, false, "mmi.job"), "");
  EXPECT_EQ(role_refusal(kRoleClient, true, ""), "not_a_worker_key");
  EXPECT_EQ(role_refusal(kRoleWorker, false, "ecg-fm"), "not_a_client_key");
  EXPECT_EQ(role_refusal(kRoleWorker, true, ""), "");
  EXPECT_EQ(role_refusal(kRoleWorker, false, "mmi.status"), "") << "its health check";
  EXPECT_EQ(role_refusal(kRoleWorker, false, "mmi.job"), "not_a_client_key");
  EXPECT_EQ(role_refusal(kRoleClient, false, "mmi.rollout"), "not_an_admin_key");
  EXPECT_EQ(role_refusal(kRoleAdmin, false, "mmi.rollout"), "");
  EXPECT_EQ(role_refusal(kRoleAdmin, true, ""), "");
  EXPECT_EQ(role_refusal(0, false, "ecg-fm"), "key_not_listed");
}

TEST(BrokerRoles, AClientKeySendingReadyGetsNoJobAndAWorkerKeyCannotSubmit) {
  Core c(curve_config());
  EXPECT_TRUE(c.as(kKeyB, kRoleClient).ready(kClientB).empty());
  auto out = c.as(kKeyA, kRoleClient).submit(kClientA, job_body("j1"));
  EXPECT_TRUE(Core::requests(out, kClientB).empty()) << "a client key registered as a worker";
  // A worker key's REQUEST is ignored: no answer, nothing queued for the real worker later.
  EXPECT_TRUE(c.as(kKeyW, kRoleWorker).submit(kWorker1, job_body("w1")).empty());
  const auto reqs = Core::requests(c.as(kKeyW, kRoleWorker).ready(kWorker1), kWorker1);
  ASSERT_EQ(reqs.size(), 1u) << "only j1 reaches the worker";
  EXPECT_EQ(job_of(reqs[0]).id, "j1");
}

TEST(BrokerRoles, AKeyRemovedFromTheListsLosesItsOpenConnection) {
  Core c(curve_config());
  c.as(kKeyW, kRoleWorker).ready(kWorker1);
  auto out = c.as(kKeyA, kRoleClient).submit(kClientA, job_body("j1"));
  ASSERT_EQ(Core::requests(out, kWorker1).size(), 1u);
  // The reload took the worker's key away: its next message (here a heartbeat) is refused and the
  // worker dropped, its job back in the queue.
  EXPECT_TRUE(Core::disconnects(c.as(kKeyW, 0).heartbeat(kWorker1), kWorker1));
  EXPECT_EQ(state_of(c, "j1", kKeyA), "queued");
  // A client whose key was removed is not heard either.
  EXPECT_TRUE(c.as(kKeyB, 0).submit(kClientB, job_body("j2")).empty());
}

TEST(BrokerRoles, OnlyTheSubmittingKeyOrAnAdminSeesAJob) {
  Core c(curve_config());
  c.as(kKeyW, kRoleWorker).ready(kWorker1);
  const auto reqs =
      Core::requests(c.as(kKeyA, kRoleClient).submit(kClientA, job_body("")), kWorker1);
  ASSERT_EQ(reqs.size(), 1u);
  const std::string id = job_of(reqs[0]).id;
  EXPECT_EQ(id, "b1-1");
  EXPECT_EQ(state_of(c, id, kKeyA), "running");
  EXPECT_EQ(state_of(c, id, kKeyB), "unknown") << "another key must not learn that it exists";
  EXPECT_EQ(state_of(c, id, kAdminKey, kRoleAdmin), "running");
}

TEST(BrokerRoles, CancelByIdIsForTheSubmittingKeyOrAnAdmin) {
  Core c(curve_config());  // no worker: jobs stay queued
  c.as(kKeyA, kRoleClient).submit(kClientA, job_body("j1"));
  c.as(kKeyA, kRoleClient).submit(kClientA, job_body("j2"));
  const auto cancel = [&](const std::string& key, unsigned roles, const std::string& id) {
    return ext::decode_cancel_reply(
        mmi(c, key, "mmi.cancel", ext::encode_cancel_request({false, {id}}), roles));
  };
  auto other = cancel(kKeyB, kRoleClient, "j1");
  ASSERT_TRUE(other.ok());
  EXPECT_EQ(other->cancelled, 0);
  EXPECT_EQ(other->unknown, 1);
  // The same key from another connection (a producer that came back) may cancel it.
  EXPECT_EQ(cancel(kKeyA, kRoleClient, "j1")->cancelled, 1);
  EXPECT_EQ(cancel(kAdminKey, kRoleAdmin, "j2")->cancelled, 1);
}

TEST(BrokerRoles, ClientChosenIdsAreScopedToTheSubmittingKey) {
  Core c(curve_config());
  c.as(kKeyW, kRoleWorker).ready(kWorker1);
  auto first = c.as(kKeyA, kRoleClient).submit(kClientA, job_body("same"));
  ASSERT_EQ(Core::requests(first, kWorker1).size(), 1u);
  // Key B's "same" is another job: it waits for the busy worker instead of joining A's.
  auto out = c.as(kKeyB, kRoleClient).submit(kClientB, job_body("same"));
  EXPECT_TRUE(Core::requests(out, kWorker1).empty());
  EXPECT_EQ(state_of(c, "same", kKeyB), "queued");
  EXPECT_EQ(state_of(c, "same", kKeyA), "running");
}

TEST(BrokerRoles, AdminServicesAreForAdminKeysOnly) {
  Core c(curve_config());
  // mmi.rollout is an admin service: a client key gets no answer at all, an admin key reaches
  // it (here an empty body: bad_request naming the body); an unknown admin service is 501.
  EXPECT_EQ(mmi(c, kKeyA, "mmi.rollout", ""), "");
  EXPECT_NE(mmi(c, kAdminKey, "mmi.rollout", "", kRoleAdmin).find("bad_request"),
            std::string::npos);
  EXPECT_EQ(mmi(c, kAdminKey, "mmi.frobnicate", "", kRoleAdmin), ext::kServiceNotImplemented);
  EXPECT_FALSE(mmi(c, kKeyA, "mmi.status", "").empty());
}

// Runs `id` from `key` on the worker, answered ok by a model with sha256 "m": true when the
// worker computed it, false when the broker answered from its cache.
bool computed(Core& c, const std::string& key, const std::string& client, const std::string& id) {
  auto reqs = Core::requests(c.as(key, kRoleClient).submit(client, job_body(id)), kWorker1);
  if (reqs.empty()) return false;
  c.as(kKeyW, kRoleWorker).final(kWorker1, reqs[0].at(2), ok_result(id, "m"));
  return true;
}

TEST(BrokerRoles, ACachedResultAnswersOnlyTheKeyWhoseJobComputedIt) {
  // A hit across keys would tell key B that key A submitted this very ECG.
  Core c(curve_config());
  c.as(kKeyW, kRoleWorker).ready(kWorker1, ready_meta("w", 1, WorkerState::Warm, "m"));
  EXPECT_TRUE(computed(c, kKeyA, kClientA, "a1"));
  EXPECT_FALSE(computed(c, kKeyA, kClientA, "a2")) << "the same key, the same content: a hit";
  EXPECT_TRUE(computed(c, kKeyB, kClientB, "b1")) << "another key computes its own";
  EXPECT_FALSE(computed(c, kKeyB, kClientB, "b2"));

  BrokerConfig shared = curve_config();
  shared.result_cache_scope = "shared";
  Core s(shared);
  s.as(kKeyW, kRoleWorker).ready(kWorker1, ready_meta("w", 1, WorkerState::Warm, "m"));
  EXPECT_TRUE(computed(s, kKeyA, kClientA, "a1"));
  EXPECT_FALSE(computed(s, kKeyB, kClientB, "b1")) << "result_cache_scope: shared";
}

TEST(BrokerRoles, QueueFairnessAndItsBoundCountAKeyNotItsConnections) {
  BrokerConfig config = curve_config();
  config.max_queue_per_client = 2;
  Core c(config);  // no worker: jobs stay queued
  // Key A from two connections is one client: its third job is refused whichever carries it.
  const std::string kClientA2 = std::string(1, '\0') + "client-a-2";
  EXPECT_TRUE(
      Core::finals(c.as(kKeyA, kRoleClient).submit(kClientA, job_body("a1")), kClientA).empty());
  EXPECT_TRUE(
      Core::finals(c.as(kKeyA, kRoleClient).submit(kClientA2, job_body("a2")), kClientA2).empty());
  auto third = Core::finals(c.as(kKeyA, kRoleClient).submit(kClientA2, job_body("a3")), kClientA2);
  ASSERT_EQ(third.size(), 1u);
  EXPECT_EQ(code_of(third[0]), "queue_full");
  // Key B is its own client: it gets a turn right after A's first job, not after both.
  c.as(kKeyB, kRoleClient).submit(kClientB, job_body("b1"));
  std::vector<std::string> order;
  for (int i = 0; i < 3; ++i) {
    const std::string w = std::string(1, '\0') + "worker-" + std::to_string(i);
    for (const auto& r : Core::requests(c.as(kKeyW, kRoleWorker).ready(w), w))
      order.push_back(job_of(r).id);
  }
  EXPECT_EQ(order, (std::vector<std::string>{"a1", "b1", "a2"}));
}

}  // namespace
}  // namespace ecgq::broker::test
