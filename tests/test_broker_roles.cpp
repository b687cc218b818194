// The broker core's CURVE rules on a fake clock: which role a message needs (a client key may
// not serve, a worker key may not submit, admin mmi.* services are for admin keys), a key removed
// from the lists loses its connections' messages, and jobs belong to the key that submitted them
// (mmi.job, mmi.cancel, client-chosen ids). The sockets' side is tests/test_broker_curve.cpp.
#include <gtest/gtest.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <cstring>

#include "broker/core.hpp"
#include "broker/key_role.hpp"
#include "protocol/extensions.hpp"
#include "protocol/schema.hpp"

namespace ecgq::broker {
namespace {

using namespace std::chrono_literals;
using mdp::Frames;

const bool kQuiet = [] {
  spdlog::set_level(spdlog::level::off);
  return true;
}();

const std::string kClientA = std::string(1, '\0') + "client-a";
const std::string kClientB = std::string(1, '\0') + "client-b";
const std::string kWorker = std::string(1, '\0') + "worker";
const std::string kKeyA = "key-of-client-a";
const std::string kKeyB = "key-of-client-b";
const std::string kKeyW = "key-of-the-worker";

// A one-sample ecgq job with this id ("" = the broker assigns one).
std::string job(const std::string& id) {
  schema::Job j;
  j.id = id;
  j.ecg.dtype = "f32";
  j.ecg.shape = {1, 1};
  j.ecg.data.assign(4, '\0');
  j.fs = 500;
  j.leads = {"I"};
  return schema::encode_job(j);
}

// A core with CURVE on; every message names its key and roles.
class Curve {
 public:
  Curve() : core(config(), now, [this] { return "r" + std::to_string(++ids); }) {}

  static BrokerConfig config() {
    BrokerConfig c;
    c.curve_secret_cert = "broker_secret";
    c.client_keys = "clients";
    return c;
  }

  Actions send(const std::string& peer, const std::string& key, unsigned roles, Frames frames) {
    return core.handle(Received{peer, std::move(frames), now, key, roles});
  }
  Actions submit(const std::string& peer, const std::string& key, const std::string& body,
                 unsigned roles = kRoleClient, const std::string& service = "ecg-fm") {
    return send(peer, key, roles, mdp::client_frames(mdp::ClientCommand::Request, service, {body}));
  }
  Actions ready(const std::string& peer, const std::string& key, unsigned roles = kRoleWorker) {
    return send(peer, key, roles, mdp::ready_frames("ecg-fm", ""));
  }
  // The body of the FINAL an mmi.* call got, "" when none.
  std::string mmi(const std::string& peer, const std::string& key, const std::string& service,
                  const std::string& body, unsigned roles = kRoleClient) {
    for (const auto& f : to(submit(peer, key, body, roles, service), peer))
      if (f.at(2) == service) return f.at(3);
    return "";
  }
  std::string state_of(const std::string& id, const std::string& key,
                       unsigned roles = kRoleClient) {
    auto reply =
        ext::decode_job_reply(mmi(kClientB, key, "mmi.job", ext::encode_job_query({{id}}), roles));
    return reply.ok() && reply->jobs.size() == 1 ? reply->jobs[0].state : "?";
  }
  static std::vector<Frames> to(const Actions& actions, const std::string& peer) {
    std::vector<Frames> out;
    for (const auto& a : actions)
      if (const auto* s = std::get_if<Send>(&a); s && s->peer == peer) out.push_back(s->frames);
    return out;
  }

  int ids = 0;
  TimePoint now = TimePoint{} + 1h;
  BrokerCore core;
};

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
  Curve c;
  EXPECT_TRUE(c.ready(kClientB, kKeyB, kRoleClient).empty());
  auto out = c.submit(kClientA, kKeyA, job("j1"));
  EXPECT_TRUE(Curve::to(out, kClientB).empty()) << "a client key registered as a worker";
  // A worker key's REQUEST is ignored: no answer, nothing queued for the real worker later.
  EXPECT_TRUE(c.submit(kWorker, kKeyW, job("w1"), kRoleWorker).empty());
  out = c.ready(kWorker, kKeyW);
  const auto reqs = Curve::to(out, kWorker);
  ASSERT_EQ(reqs.size(), 1u) << "only j1 reaches the worker";
  EXPECT_EQ(schema::decode_job(reqs[0].at(4))->id, "j1");
}

TEST(BrokerRoles, AKeyRemovedFromTheListsLosesItsOpenConnection) {
  Curve c;
  c.ready(kWorker, kKeyW);
  auto out = c.submit(kClientA, kKeyA, job("j1"));
  ASSERT_EQ(Curve::to(out, kWorker).size(), 1u);
  // The reload took the worker's key away: its next message (here a heartbeat) is refused and the
  // worker dropped, its job back in the queue.
  out = c.send(kWorker, kKeyW, 0, mdp::heartbeat_frames(""));
  bool disconnected = false;
  for (const auto& a : out) disconnected |= std::holds_alternative<Disconnect>(a);
  EXPECT_TRUE(disconnected);
  EXPECT_EQ(c.state_of("j1", kKeyA), "queued");
  // A client whose key was removed is not heard either.
  EXPECT_TRUE(c.submit(kClientB, kKeyB, job("j2"), 0).empty());
}

TEST(BrokerRoles, OnlyTheSubmittingKeyOrAnAdminSeesAJob) {
  Curve c;
  c.ready(kWorker, kKeyW);
  auto out = c.submit(kClientA, kKeyA, job(""));
  const auto reqs = Curve::to(out, kWorker);
  ASSERT_EQ(reqs.size(), 1u);
  const std::string id = schema::decode_job(reqs[0].at(4))->id;
  EXPECT_EQ(id, "r1");
  EXPECT_EQ(c.state_of(id, kKeyA), "running");
  EXPECT_EQ(c.state_of(id, kKeyB), "unknown") << "another key must not learn that it exists";
  EXPECT_EQ(c.state_of(id, "admin-key", kRoleAdmin), "running");
}

TEST(BrokerRoles, CancelByIdIsForTheSubmittingKeyOrAnAdmin) {
  Curve c;  // no worker: jobs stay queued
  c.submit(kClientA, kKeyA, job("j1"));
  c.submit(kClientA, kKeyA, job("j2"));
  const auto cancel = [&](const std::string& key, unsigned roles, const std::string& id) {
    return ext::decode_cancel_reply(
        c.mmi(kClientB, key, "mmi.cancel", ext::encode_cancel_request({false, {id}}), roles));
  };
  auto other = cancel(kKeyB, kRoleClient, "j1");
  ASSERT_TRUE(other.ok());
  EXPECT_EQ(other->cancelled, 0);
  EXPECT_EQ(other->unknown, 1);
  // The same key from another connection (a producer that came back) may cancel it.
  EXPECT_EQ(cancel(kKeyA, kRoleClient, "j1")->cancelled, 1);
  EXPECT_EQ(cancel("admin-key", kRoleAdmin, "j2")->cancelled, 1);
}

TEST(BrokerRoles, ClientChosenIdsAreScopedToTheSubmittingKey) {
  Curve c;
  c.ready(kWorker, kKeyW);
  auto first = Curve::to(c.submit(kClientA, kKeyA, job("same")), kWorker);
  ASSERT_EQ(first.size(), 1u);
  // Key B's "same" is another job: it waits for the busy worker instead of joining A's.
  auto out = c.submit(kClientB, kKeyB, job("same"));
  EXPECT_TRUE(Curve::to(out, kWorker).empty());
  EXPECT_EQ(c.state_of("same", kKeyB), "queued");
  EXPECT_EQ(c.state_of("same", kKeyA), "running");
}

TEST(BrokerRoles, AdminServicesAreForAdminKeysOnly) {
  Curve c;
  // mmi.rollout is an admin service: a client key gets no answer at all, an admin key reaches
  // it (here an empty body: bad_request naming the body); an unknown admin service is 501.
  EXPECT_EQ(c.mmi(kClientA, kKeyA, "mmi.rollout", ""), "");
  EXPECT_NE(c.mmi(kClientA, "admin-key", "mmi.rollout", "", kRoleAdmin).find("bad_request"),
            std::string::npos);
  EXPECT_EQ(c.mmi(kClientA, "admin-key", "mmi.frobnicate", "", kRoleAdmin),
            ext::kServiceNotImplemented);
  EXPECT_FALSE(c.mmi(kClientA, kKeyA, "mmi.status", "").empty());
}

}  // namespace
}  // namespace ecgq::broker
