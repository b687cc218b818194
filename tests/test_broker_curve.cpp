// The real ecgq-broker with CURVE on (issue 13), on 127.0.0.1: authorised clients and workers
// work; a plaintext peer, an unknown key, a client key sending READY and a worker key sending
// REQUEST get nothing while authorised traffic goes on, and the broker's log says why, by key
// fingerprint; a key removed by SIGHUP stops working on its open connection and at its next
// handshake; jobs are scoped to the key that submitted them (mmi.job); ids are 128-bit random;
// a plaintext broker refuses a non-loopback bind without allow_insecure.
#include <gtest/gtest.h>

#include <csignal>
#include <filesystem>
#include <initializer_list>
#include <regex>

#include "protocol/curve.hpp"
#include "protocol/extensions.hpp"
#include "tests/test_broker_peers.hpp"

namespace ecgq::test {
namespace {

// The key pairs of one test: the broker's and one per peer, with the allow-list directories.
class Keys {
 public:
  Keys() {
    for (const char* d : {"clients", "workers", "admins"})
      std::filesystem::create_directories(dir.file(d));
    broker = make("broker", "");
    client = make("client", "clients");
    client2 = make("client2", "clients");
    worker = make("worker", "workers");
    admin = make("admin", "admins");
    stranger = make("stranger", "");
  }

  // CURVE client keys of the pair named `name`.
  curve::ClientKeys peer(const std::string& name) const {
    return **curve::load_client_keys(dir.file(name + "_secret"), dir.file("broker"));
  }
  // The broker's flags for these keys.
  std::vector<std::string> broker_flags() const {
    return {"--curve-secret-cert", dir.file("broker_secret"), "--client-keys", dir.file("clients"),
            "--worker-keys",       dir.file("workers"),       "--admin-keys",  dir.file("admins")};
  }

  TempDir dir;
  curve::Certificate broker, client, client2, worker, admin, stranger;

 private:
  // Writes the pair `name` and, for a role, its public certificate into that role's directory.
  curve::Certificate make(const std::string& name, const std::string& role_dir) {
    auto cert = *curve::generate();
    EXPECT_TRUE(curve::write_pair(dir.file(name), cert).ok());
    if (!role_dir.empty())
      std::filesystem::copy_file(dir.file(name), dir.file(role_dir + "/" + name));
    return cert;
  }
};

// A CURVE broker with the test's keys, ready once an admin's mmi.service is answered.
struct CurveBroker {
  explicit CurveBroker(const Keys& keys)
      : admin(keys.peer("admin")), process(keys.broker_flags(), "10", &admin) {}
  // True once the broker's log holds `text` (its log lines are one per event).
  bool logged(const std::string& text) const { return logged_any({text}); }
  // Whether one of `texts` appears in the broker's log within 10 s.
  bool logged_any(std::initializer_list<std::string> texts) const {
    return wait_until(
        [&] {
          const std::string log = process.proc->stderr_text();
          for (const std::string& t : texts)
            if (log.find(t) != std::string::npos) return true;
          return false;
        },
        10s);
  }
  curve::ClientKeys admin;
  BrokerProcess process;
};

// A peer the broker must refuse, driven from the test thread. Its sends never block: a refused
// handshake never completes, and a blocking send could then wait forever.
class Outsider {
 public:
  Outsider(const std::string& endpoint, const std::optional<curve::ClientKeys>& keys)
      : s_(ctx(), zmq::socket_type::dealer) {
    s_.set(zmq::sockopt::linger, 0);
    if (keys) curve::apply_client_keys(s_, *keys);
    s_.connect(endpoint);
  }
  void send(const Frames& f) { mdp::send_frames(s_, f, zmq::send_flags::dontwait); }
  // Sends READY for ecg-fm, as a worker would.
  void ready() { send({kW, byte(0x01), "ecg-fm"}); }
  // Sends a job REQUEST, as a client would.
  void submit(const std::string& id) { send({kC, byte(0x01), "ecg-fm", job_body(id)}); }
  // Messages that reached it so far (a job, a reply, a heartbeat), without waiting.
  size_t received() {
    while (mdp::recv_frames(s_, zmq::recv_flags::dontwait)) ++received_;
    return received_;
  }

 private:
  zmq::socket_t s_;
  size_t received_ = 0;
};

// The result of `job` submitted by a client, "" when no FINAL came in time.
std::string run_job(RawClient& client, const std::string& id) {
  client.request("ecg-fm", {job_body(id)});
  auto f = client.final(10s);
  return f ? result_of(*f).status : "";
}

// What mmi.job says of `id` to this client.
std::string job_state(RawClient& client, const std::string& id) {
  auto body = client.mmi("mmi.job", ext::encode_job_query({{id}}));
  if (!body) return "no answer";
  auto reply = ext::decode_job_reply(*body);
  return reply.ok() && reply->jobs.size() == 1 ? reply->jobs[0].state : "bad reply";
}

TEST(BrokerCurve, AuthorisedPeersWorkAndEveryOtherPeerGetsNothingWithTheReasonLogged) {
  Keys keys;
  CurveBroker broker(keys);
  ASSERT_TRUE(broker.process.ready) << broker.process.proc->stderr_text();
  const std::string& endpoint = broker.process.endpoint;

  // Peers that must never get a job: no keys, an unknown key, a client key sending READY.
  Outsider plaintext(endpoint, std::nullopt);
  Outsider stranger(endpoint, keys.peer("stranger"));
  Outsider client_as_worker(endpoint, keys.peer("client"));
  for (Outsider* o : {&plaintext, &stranger, &client_as_worker}) o->ready();
  // The plaintext peer's refusal shows as whichever side notices first: libzmq reports the
  // mechanism mismatch (not_curve) or the peer's closed connection (bad_handshake).
  EXPECT_TRUE(broker.logged_any({"event=peer_refused reason=bad_handshake socket=bind",
                                 "event=peer_refused reason=not_curve socket=bind"}))
      << broker.process.proc->stderr_text();
  EXPECT_TRUE(
      broker.logged("reason=unknown_key key=" + curve::fingerprint(keys.stranger.public_key)));
  EXPECT_TRUE(
      broker.logged("reason=not_a_worker_key key=" + curve::fingerprint(keys.client.public_key)));

  // A worker key sending REQUEST: refused, logged, unanswered.
  const auto worker_keys = keys.peer("worker");
  Outsider worker_as_client(endpoint, worker_keys);
  worker_as_client.submit("from-a-worker-key");
  EXPECT_TRUE(
      broker.logged("reason=not_a_client_key key=" + curve::fingerprint(keys.worker.public_key)));

  // The authorised pair works throughout.
  RawWorker worker(endpoint, "ecg-fm", {}, 100ms, worker_keys);
  worker.auto_final(true);
  const auto client_keys = keys.peer("client");
  RawClient client(endpoint, &client_keys);
  for (int i = 0; i < 6; ++i) EXPECT_EQ(run_job(client, "job-" + std::to_string(i)), "ok");
  EXPECT_EQ(worker.requests().size(), 6u);
  for (Outsider* o : {&plaintext, &stranger, &client_as_worker, &worker_as_client})
    EXPECT_EQ(o->received(), 0u) << "a refused peer got a message";
  // The worker key's REQUEST never became a job.
  EXPECT_EQ(job_state(client, "from-a-worker-key"), "unknown");
  // No job content in the log: the ids are there, the samples and metadata never are.
  EXPECT_EQ(broker.process.proc->stderr_text().find(keys.client.secret_key), std::string::npos);
}

TEST(BrokerCurve, TheRealCliAndGatewayStyleClientsConnectWithKeysAndFailClearlyWithout) {
  Keys keys;
  CurveBroker broker(keys);
  ASSERT_TRUE(broker.process.ready);
  const std::string& endpoint = broker.process.endpoint;
  auto ok = run_command(
      {bin("ecgq"), "--broker", endpoint, "--curve-cert", keys.dir.file("client_secret"),
       "--broker-key", keys.dir.file("broker"), "status", "--json"},
      20s);
  EXPECT_EQ(ok.exit_code, 0) << ok.err;
  // The same through the environment, with the broker's key as Z85 text.
  ok = run_command({bin("ecgq"), "--broker", endpoint, "status", "--json"}, 20s,
                   {{"ECGQ_CURVE_CERT", keys.dir.file("client_secret")},
                    {"ECGQ_BROKER_KEY", keys.broker.public_key}});
  EXPECT_EQ(ok.exit_code, 0) << ok.err;
  // Without keys the broker never answers.
  auto plain = run_command({bin("ecgq"), "--broker", endpoint, "--timeout", "1s", "status"}, 20s);
  EXPECT_EQ(plain.exit_code, 1) << plain.err;
  // Bad key files are usage errors naming the flag and the file.
  auto missing =
      run_command({bin("ecgq"), "--broker", endpoint, "--curve-cert", keys.dir.file("nope_secret"),
                   "--broker-key", keys.dir.file("broker"), "status"},
                  20s);
  EXPECT_EQ(missing.exit_code, 2);
  EXPECT_NE(missing.err.find("--curve-cert"), std::string::npos) << missing.err;
  EXPECT_NE(missing.err.find("nope_secret"), std::string::npos) << missing.err;
  auto public_only = run_command({bin("ecgq"), "--curve-cert", keys.dir.file("client"),
                                  "--broker-key", keys.dir.file("broker"), "status"},
                                 20s);
  EXPECT_EQ(public_only.exit_code, 2);
  EXPECT_NE(public_only.err.find("secret-key"), std::string::npos) << public_only.err;
  auto half =
      run_command({bin("ecgq"), "--curve-cert", keys.dir.file("client_secret"), "status"}, 20s);
  EXPECT_EQ(half.exit_code, 2);
  EXPECT_NE(half.err.find("--broker-key"), std::string::npos) << half.err;
}

TEST(BrokerCurve, AKeyRemovedBySighupStopsWorkingOnItsOpenConnectionAndAtItsNextHandshake) {
  Keys keys;
  CurveBroker broker(keys);
  ASSERT_TRUE(broker.process.ready);
  const std::string& endpoint = broker.process.endpoint;
  RawWorker worker(endpoint, "ecg-fm", {}, 100ms, keys.peer("worker"));
  worker.auto_final(true);
  const auto kept_keys = keys.peer("client");
  const auto removed_keys = keys.peer("client2");
  RawClient kept(endpoint, &kept_keys);
  RawClient removed(endpoint, &removed_keys);
  EXPECT_EQ(run_job(removed, "before"), "ok");

  std::filesystem::remove(keys.dir.file("clients/client2"));
  broker.process.proc->signal(SIGHUP);
  ASSERT_TRUE(wait_until(
      [&] {
        const std::string log = broker.process.proc->stderr_text();
        return log.find("event=keys_loaded keys=3") != std::string::npos;
      },
      10s))
      << broker.process.proc->stderr_text();

  // Its open connection: the message is ignored and logged.
  removed.request("ecg-fm", {job_body("after")});
  const std::string fp = curve::fingerprint(keys.client2.public_key);
  EXPECT_TRUE(broker.logged("reason=key_not_listed key=" + fp));
  // A new connection with the same key: refused at the handshake.
  Outsider again(endpoint, removed_keys);
  again.submit("again");
  EXPECT_TRUE(broker.logged("reason=unknown_key key=" + fp));
  // Other keys are unaffected.
  EXPECT_EQ(run_job(kept, "kept"), "ok");
  EXPECT_FALSE(removed.recv(0ms).has_value());
  EXPECT_EQ(again.received(), 0u);
  EXPECT_EQ(worker.requests().size(), 2u) << "only 'before' and 'kept' were run";
}

TEST(BrokerCurve, OnlyTheSubmittingKeyOrAnAdminSeesAJobAndAssignedIdsAreRandom) {
  Keys keys;
  CurveBroker broker(keys);
  ASSERT_TRUE(broker.process.ready);
  const std::string& endpoint = broker.process.endpoint;
  RawWorker worker(endpoint, "ecg-fm", {}, 100ms, keys.peer("worker"));
  worker.auto_final(true);
  const auto owner_keys = keys.peer("client");
  const auto other_keys = keys.peer("client2");
  RawClient owner(endpoint, &owner_keys);
  RawClient other(endpoint, &other_keys);
  RawClient admin(endpoint, &broker.admin);

  std::vector<std::string> ids;
  for (int i = 0; i < 2; ++i) {
    owner.request("ecg-fm", {job_body("")});
    auto f = owner.final(10s);
    ASSERT_TRUE(f.has_value());
    ids.push_back(result_of(*f).id);
    EXPECT_TRUE(std::regex_match(ids.back(), std::regex("[0-9a-f]{32}"))) << ids.back();
  }
  EXPECT_NE(ids[0], ids[1]);
  EXPECT_EQ(job_state(owner, ids[0]), "done");
  EXPECT_EQ(job_state(other, ids[0]), "unknown");
  EXPECT_EQ(job_state(admin, ids[0]), "done");
  // A client-chosen id belongs to its key: the other key's "mine" is another job.
  EXPECT_EQ(run_job(owner, "mine"), "ok");
  EXPECT_EQ(job_state(other, "mine"), "unknown");
  EXPECT_EQ(run_job(other, "mine"), "ok");
  EXPECT_EQ(worker.requests().size(), 4u);
}

TEST(BrokerCurve, TheSubmittingKeyIsJournaledSoScopingSurvivesARestart) {
  Keys keys;
  TempDir journal;
  std::vector<std::string> flags = keys.broker_flags();
  flags.insert(flags.end(), {"--journal", journal.file("broker.db")});
  const auto owner_keys = keys.peer("client");
  const auto other_keys = keys.peer("client2");
  const auto admin_keys = keys.peer("admin");
  {
    BrokerProcess broker(flags, "10", &admin_keys);
    ASSERT_TRUE(broker.ready) << broker.proc->stderr_text();
    RawWorker worker(broker.endpoint, "ecg-fm", {}, 100ms, keys.peer("worker"));
    worker.auto_final(true);
    RawClient owner(broker.endpoint, &owner_keys);
    EXPECT_EQ(run_job(owner, "kept-across-restart"), "ok");
    broker.proc->signal(SIGKILL);
    broker.proc->wait(10s);
  }
  BrokerProcess broker(flags, "10", &admin_keys);
  ASSERT_TRUE(broker.ready) << broker.proc->stderr_text();
  RawClient owner(broker.endpoint, &owner_keys);
  RawClient other(broker.endpoint, &other_keys);
  // Done, or queued again when the kill beat the journal's Finish record: known either way.
  const std::string state = job_state(owner, "kept-across-restart");
  EXPECT_TRUE(state == "done" || state == "queued") << state;
  EXPECT_EQ(job_state(other, "kept-across-restart"), "unknown");
}

TEST(BrokerCurve, PlaintextStaysOnLoopbackUnlessAllowInsecure) {
  const std::string port = free_endpoint().substr(std::string("tcp://127.0.0.1:").size());
  auto refused = run_command({bin("ecgq-broker"), "--bind", "tcp://0.0.0.0:" + port}, 20s);
  EXPECT_EQ(refused.exit_code, 2);
  EXPECT_NE(refused.err.find("allow_insecure"), std::string::npos) << refused.err;
  auto worker_bind = run_command(
      {bin("ecgq-broker"), "--bind", "tcp://127.0.0.1:" + port, "--worker-bind", "tcp://*:1"}, 20s);
  EXPECT_EQ(worker_bind.exit_code, 2);
  EXPECT_NE(worker_bind.err.find("worker_bind"), std::string::npos) << worker_bind.err;

  ChildProcess insecure(
      {bin("ecgq-broker"), "--bind", "tcp://0.0.0.0:" + port, "--allow-insecure", "true"});
  EXPECT_TRUE(wait_until(
      [&] { return insecure.stderr_text().find("event=insecure") != std::string::npos; }, 10s))
      << insecure.stderr_text();
  EXPECT_TRUE(insecure.running());

  // Key settings that do not go together, or a missing certificate, are usage errors.
  Keys keys;
  auto no_lists =
      run_command({bin("ecgq-broker"), "--curve-secret-cert", keys.dir.file("broker_secret")}, 20s);
  EXPECT_EQ(no_lists.exit_code, 2);
  EXPECT_NE(no_lists.err.find("client_keys"), std::string::npos) << no_lists.err;
  auto missing =
      run_command({bin("ecgq-broker"), "--bind", "tcp://127.0.0.1:" + port, "--curve-secret-cert",
                   keys.dir.file("nope"), "--client-keys", keys.dir.file("clients")},
                  20s);
  EXPECT_EQ(missing.exit_code, 2);
  EXPECT_NE(missing.err.find("nope"), std::string::npos) << missing.err;
}

}  // namespace
}  // namespace ecgq::test
