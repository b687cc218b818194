// ecgq-broker as a command: usage errors, configuration layers, exit codes.
#include <gtest/gtest.h>

#include <csignal>
#include <fstream>

#include "tests/test_broker_peers.hpp"

namespace ecgq::test {
namespace {

TEST(BrokerCli, VersionAndHelpExitZero) {
  auto v = run_command({bin("ecgq-broker"), "--version"}, 10s);
  EXPECT_EQ(v.exit_code, 0);
  EXPECT_NE(v.out.find("ecgq-broker"), std::string::npos);
  auto h = run_command({bin("ecgq-broker"), "--help"}, 10s);
  EXPECT_EQ(h.exit_code, 0);
  for (const char* flag :
       {"--bind", "--worker-bind", "--heartbeat-interval", "--max-queue", "--max-queue-per-client",
        "--max-attempts", "--service-wait", "--max-message-bytes", "--keep-warm", "--ecgq-services",
        "--shutdown-grace", "--log-level", "--config"})
    EXPECT_NE(h.out.find(flag), std::string::npos) << flag;
}

TEST(BrokerCli, BadUsageExitsTwoWithTheReason) {
  auto unknown = run_command({bin("ecgq-broker"), "--no-such-flag"}, 10s);
  EXPECT_EQ(unknown.exit_code, 2);
  auto bad = run_command({bin("ecgq-broker"), "--heartbeat-interval", "fast"}, 10s);
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.err.find("heartbeat_interval"), std::string::npos) << bad.err;
  auto env = run_command({bin("ecgq-broker")}, 10s, {{"ECGQ_MAX_ATTEMPTS", "0"}});
  EXPECT_EQ(env.exit_code, 2);
  EXPECT_NE(env.err.find("ECGQ_MAX_ATTEMPTS"), std::string::npos) << env.err;
  TempDir dir;
  { std::ofstream(dir.file("b.yaml")) << "max_queu: 5\n"; }
  auto yaml = run_command({bin("ecgq-broker"), "--config", dir.file("b.yaml")}, 10s);
  EXPECT_EQ(yaml.exit_code, 2);
  EXPECT_NE(yaml.err.find("max_queu"), std::string::npos) << yaml.err;
}

TEST(BrokerCli, BindFailureExitsOne) {
  // allow_insecure: a non-loopback plaintext bind is otherwise refused before binding (exit 2).
  auto r = run_command(
      {bin("ecgq-broker"), "--bind", "tcp://256.1.1.1:1", "--allow-insecure", "true"}, 10s);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("bind"), std::string::npos) << r.err;
}

TEST(BrokerCli, ShippedConfigLoadsAndFlagsOverrideIt) {
  // config/broker.yaml lists every setting at its default; a flag still wins over it.
  BrokerProcess broker({"--config", source("config/broker.yaml"), "--max-queue", "1"});
  ASSERT_TRUE(broker.ready) << broker.proc->stderr_text();
  RawClient client(broker.endpoint);
  client.request("ecg-fm", {job_body("one")});
  client.request("ecg-fm", {job_body("two")});
  EXPECT_EQ(code_of(client.final()), "queue_full");
  broker.proc->signal(SIGINT);
  EXPECT_EQ(broker.proc->wait(10s), 0);
}

TEST(BrokerCli, SeparateWorkerEndpoint) {
  const std::string workers = free_endpoint();
  BrokerProcess broker({"--worker-bind", workers});
  ASSERT_TRUE(broker.ready) << broker.proc->stderr_text();
  RawWorker worker(workers, "echo");
  RawClient client(broker.endpoint);
  ASSERT_TRUE(wait_until([&] { return client.mmi("mmi.service", "echo") == "200"; }, 5s));
  client.request("echo", {"ping"});
  auto req = worker.next();
  ASSERT_TRUE(req);
  worker.final((*req)[2], {"pong"});
  auto m = client.final();
  ASSERT_TRUE(m);
  EXPECT_EQ(*m, (Frames{kC, byte(0x03), "echo", "pong"}));
}

}  // namespace
}  // namespace ecgq::test
