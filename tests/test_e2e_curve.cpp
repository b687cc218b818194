// CURVE end to end (issue 13) with the real programs on 127.0.0.1: ecgq-broker with allow-lists,
// ecgq-worker serve with --curve-cert/--broker-key on the tiny checkpoint, and `ecgq submit`
// with the same global options; a worker without keys never registers; the gateway refuses bad
// key settings at start.
#include <gtest/gtest.h>

#include <filesystem>
#include <sstream>

#include "protocol/curve.hpp"
#include "records/npy.hpp"
#include "tests/test_e2e_cluster.hpp"

namespace ecgq::test {
namespace {

// Writes the pair `name` under `dir`, its public certificate also into `dir/list` when given.
void make_pair(const TempDir& dir, const std::string& name, const std::string& list = {}) {
  ASSERT_TRUE(curve::write_pair(dir.file(name), *curve::generate()).ok());
  if (list.empty()) return;
  std::filesystem::create_directories(dir.file(list));
  std::filesystem::copy_file(dir.file(name), dir.file(list + "/" + name));
}

TEST(E2eCurve, AKeyedWorkerAndProducerRunJobsAndAKeylessWorkerNeverRegisters) {
  ECGQ_REQUIRE_BINARIES("ecgq-broker", "ecgq-worker", "ecgq");
  TempDir keys;
  make_pair(keys, "broker");
  make_pair(keys, "worker", "workers");
  make_pair(keys, "client", "clients");
  auto client_keys = curve::load_client_keys(keys.file("client_secret"), keys.file("broker"));
  ASSERT_TRUE(client_keys.ok()) << client_keys.status().to_string();
  Broker broker({"--curve-secret-cert", keys.file("broker_secret"), "--client-keys",
                 keys.file("clients"), "--worker-keys", keys.file("workers")},
                *client_keys);
  ASSERT_TRUE(broker.ready) << broker.diagnostics();
  const std::vector<std::string> worker_flags = {"--curve-cert", keys.file("worker_secret"),
                                                 "--broker-key", keys.file("broker")};
  auto keyed = start_worker(broker.endpoint, "keyed", worker_flags);
  auto keyless = start_worker(broker.endpoint, "keyless");
  client::ClientOptions o;
  o.broker = broker.endpoint;
  o.curve = *client_keys;
  client::Client c(o);
  ASSERT_TRUE(wait_workers(c, {"keyed"})) << keyed->stderr_text();

  TempDir dir;
  const std::vector<float> ecg = synthetic_ecg(5000);
  ASSERT_TRUE(write_npy_f32(dir.file("r.npy"), ecg.data(), {12, 5000}).ok());
  auto run = run_command(
      {bin("ecgq"), "--broker", broker.endpoint, "--curve-cert", keys.file("client_secret"),
       "--broker-key", keys.file("broker"), "submit", dir.file("r.npy")},
      60s);
  ASSERT_EQ(run.exit_code, 0) << run.err;
  std::istringstream lines(run.out);
  std::string line;
  ASSERT_TRUE(std::getline(lines, line));
  const client::Json j = client::Json::parse(line);
  EXPECT_EQ(j["status"], "ok");
  EXPECT_EQ(j["worker"], "keyed");
  // The keyless worker's handshake is refused (logged); it is never registered.
  EXPECT_TRUE(wait_until(
      [&] {
        return broker.proc->stderr_text().find("event=peer_refused reason=bad_handshake") !=
               std::string::npos;
      },
      20s))
      << broker.proc->stderr_text();
  EXPECT_TRUE(keyless->running());
  EXPECT_EQ(worker_states(c).count("keyless"), 0u);
}

TEST(E2eCurve, WorkerAndGatewayRefuseBadKeySettingsAtStart) {
  ECGQ_REQUIRE_BINARIES("ecgq-worker", "ecgq-gateway");
  TempDir keys;
  make_pair(keys, "broker");
  make_pair(keys, "worker");
  auto worker =
      run_command({bin("ecgq-worker"), "serve", "--checkpoint", tiny_checkpoint(), "--curve-cert",
                   keys.file("missing_secret"), "--broker-key", keys.file("broker")},
                  30s);
  EXPECT_EQ(worker.exit_code, 2) << worker.err;
  EXPECT_NE(worker.err.find("missing_secret"), std::string::npos) << worker.err;
  auto half = run_command({bin("ecgq-worker"), "serve", "--checkpoint", tiny_checkpoint(),
                           "--curve-cert", keys.file("worker_secret")},
                          30s);
  EXPECT_EQ(half.exit_code, 2) << half.err;
  EXPECT_NE(half.err.find("broker_key"), std::string::npos) << half.err;
  auto gateway = run_command({bin("ecgq-gateway"), "--curve-cert", keys.file("worker_secret"),
                              "--broker-key", "not-a-key"},
                             30s);
  EXPECT_EQ(gateway.exit_code, 2) << gateway.err;
  EXPECT_NE(gateway.err.find("broker_key"), std::string::npos) << gateway.err;
}

}  // namespace
}  // namespace ecgq::test
