// ecgq-broker with real ecgq-worker processes (tiny checkpoint): a job runs end to end, and a
// job whose worker freezes is finished by another worker while the frozen one's late reply is
// kept from the client.
#include <gtest/gtest.h>

#include <csignal>

#include "tests/test_broker_peers.hpp"

namespace ecgq::test {
namespace {

// A 12-lead, 10 s, 500 Hz job with small random samples.
std::string ecg_job(const std::string& id) {
  schema::Job j;
  j.id = id;
  j.ecg.dtype = "f32";
  j.ecg.shape = {12, 5000};
  std::vector<float> x(12 * 5000);
  uint32_t state = 12345;
  for (auto& v : x) {
    state = state * 1664525u + 1013904223u;
    v = (static_cast<float>(state >> 8) / 16777216.0f - 0.5f) * 0.2f;
  }
  j.ecg.data.assign(reinterpret_cast<const char*>(x.data()), x.size() * sizeof(float));
  j.fs = 500;
  j.leads = {"I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6"};
  return schema::encode_job(j);
}

std::unique_ptr<ChildProcess> start_worker(const std::string& endpoint, const std::string& id) {
  return std::make_unique<ChildProcess>(std::vector<std::string>{
      bin("ecgq-worker"), "serve", "--broker", endpoint, "--checkpoint",
      data_path("ecgfm/tiny_finetuned.pt"), "--heartbeat-interval", "100ms", "--heartbeat-liveness",
      "10", "--worker-id", id, "--log-level", "debug"});
}

// True when mmi.status lists worker `id` as warm for ecg-fm.
bool warm(RawClient& client, const std::string& id) {
  auto status = client.mmi("mmi.status", "");
  if (!status) return false;
  auto oh = msgpack::unpack(status->data(), status->size());
  auto root = oh.get().as<std::map<std::string, msgpack::object>>();
  auto services = root.at("services").as<std::map<std::string, msgpack::object>>();
  if (!services.count("ecg-fm")) return false;
  auto svc = services.at("ecg-fm").as<std::map<std::string, msgpack::object>>();
  for (const auto& w : svc.at("workers").as<std::vector<std::map<std::string, msgpack::object>>>())
    if (w.at("id").as<std::string>() == id && w.at("state").as<std::string>() == "warm")
      return true;
  return false;
}

TEST(BrokerE2e, RealWorkerRunsAJob) {
  BrokerProcess broker;
  ASSERT_TRUE(broker.ready) << broker.proc->stderr_text();
  auto worker = start_worker(broker.endpoint, "wa");
  RawClient client(broker.endpoint);
  ASSERT_TRUE(wait_until([&] { return warm(client, "wa"); }, 60s)) << worker->stderr_text();
  client.request("ecg-fm", {ecg_job("e1")});
  auto m = client.final(60s);
  ASSERT_TRUE(m);
  auto r = result_of(*m);
  EXPECT_EQ(r.status, "ok") << (r.error ? r.error->message : "");
  EXPECT_EQ(r.id, "e1");
  EXPECT_EQ(r.worker_id, "wa");
  EXPECT_EQ(r.attempts, 1);
  EXPECT_FALSE(r.probs.empty());
}

TEST(BrokerE2e, FrozenWorkersJobFinishesElsewhereAndItsLateReplyIsDropped) {
  BrokerProcess broker;
  ASSERT_TRUE(broker.ready) << broker.proc->stderr_text();
  auto frozen = start_worker(broker.endpoint, "wa");
  RawClient client(broker.endpoint);
  ASSERT_TRUE(wait_until([&] { return warm(client, "wa"); }, 60s)) << frozen->stderr_text();
  frozen->signal(SIGSTOP);  // registered and idle, so the broker hands it the job
  client.request("ecg-fm", {ecg_job("f1")});
  auto backup = start_worker(broker.endpoint, "wb");
  auto m = client.final(60s);
  ASSERT_TRUE(m) << broker.proc->stderr_text();
  auto r = result_of(*m);
  EXPECT_EQ(r.status, "ok") << (r.error ? r.error->message : "");
  EXPECT_EQ(r.id, "f1");
  EXPECT_EQ(r.worker_id, "wb");
  EXPECT_EQ(r.attempts, 2);

  // The frozen worker wakes up, runs its stale copy and replies: the broker no longer knows it,
  // answers DISCONNECT, and it registers again.
  frozen->signal(SIGCONT);
  ASSERT_TRUE(wait_until([&] { return warm(client, "wa"); }, 60s)) << frozen->stderr_text();
  client.request("ecg-fm", {ecg_job("f2")});
  m = client.final(60s);
  ASSERT_TRUE(m);
  EXPECT_EQ(result_of(*m).id, "f2");  // not a second answer for f1
}

}  // namespace
}  // namespace ecgq::test
