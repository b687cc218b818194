// Worker admission end to end (real broker, real workers, the ecgq CLI, 127.0.0.1): a worker
// whose model cannot be loaded gets no job and `ecgq status --check` tells the truth at each
// moment; a service serves one model, a worker of another is refused naming both, and
// `ecgq rollout` moves a service to another model under load without failing a job; a job
// pinned to a model no worker has gets model_unavailable.
#include <gtest/gtest.h>

#include <csignal>
#include <set>

#include "common/sha256.hpp"
#include "tests/test_e2e_cluster.hpp"

namespace ecgq::test {
namespace {

// The tiny pretrained checkpoint: another model (no classifier head) than tiny_checkpoint().
std::string pretrained_checkpoint() {
  return data_path("ecgfm/tiny_pretrained.pt");
}

std::string sha256_of(const std::string& path) {
  auto digest = sha256_file(path);
  EXPECT_TRUE(digest.ok()) << digest.status().to_string();
  return digest.ok() ? *digest : std::string();
}

// Occurrences of `needle` in `text`.
size_t count(const std::string& text, const std::string& needle) {
  size_t n = 0;
  for (size_t at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) ++n;
  return n;
}

// `ecgq status --check` against `endpoint`: its exit code.
int check(const std::string& endpoint) {
  return run_command({bin("ecgq"), "--broker", endpoint, "status", "--check"}, 10s).exit_code;
}

// The worker `id` of ecg-fm in mmi.status (an empty object when not registered).
client::Json worker_json(client::Client& c, const std::string& id) {
  client::Json s = status_json(c);
  if (s.is_object())
    for (const auto& w : s["services"]["ecg-fm"]["workers"])
      if (w.value("id", "") == id) return w;
  return client::Json::object();
}

// A worker of the tiny pretrained model (another model than start_worker's) that retries a
// refused READY every 200 ms.
std::unique_ptr<ChildProcess> start_pretrained_worker(const std::string& endpoint,
                                                      const std::string& id) {
  std::vector<std::string> argv{
      bin("ecgq-worker"), "serve", "--broker",  endpoint, "--checkpoint",  pretrained_checkpoint(),
      "--worker-id",      id,      "--threads", "1",      "--model-retry", "200ms"};
  argv.insert(argv.end(), kHeartbeat.begin(), kHeartbeat.end());
  return std::make_unique<ChildProcess>(argv);
}

// A broker with one warm worker of the fine-tuned model (`first`), and a client.
class E2eAdmissionOneModel : public ::testing::Test {
 protected:
  void SetUp() override {
    ECGQ_REQUIRE_BINARIES("ecgq-broker", "ecgq-worker", "ecgq");
    ASSERT_TRUE(broker.ready) << broker.diagnostics();
    c = connect(broker.endpoint);
    first = start_worker(broker.endpoint, "first");
    ASSERT_TRUE(wait_workers(*c, {"first"}, "warm", 60s)) << first->stderr_text();
  }

  Broker broker;
  std::unique_ptr<client::Client> c;
  std::unique_ptr<ChildProcess> first;
  const std::string first_sha = sha256_of(tiny_checkpoint());
};

// Keeps `window` jobs in flight until `done` says stop; every result goes to `results`.
void steady_load(client::Client& c, size_t window, std::vector<schema::Result>& results,
                 const std::function<bool()>& done) {
  size_t outstanding = 0;
  bool stopping = false;
  const auto until = std::chrono::steady_clock::now() + 120s;
  while ((outstanding > 0 || !stopping) && std::chrono::steady_clock::now() < until) {
    stopping = stopping || done();
    for (; !stopping && outstanding < window; ++outstanding) ASSERT_TRUE(c.submit(ecg_job()).ok());
    auto ev = c.poll(50ms);
    ASSERT_TRUE(ev.ok()) << ev.status().to_string();
    if (!ev->has_value() || !(*ev)->result) continue;
    results.push_back(*(*ev)->result);
    --outstanding;
  }
  ASSERT_EQ(outstanding, 0u) << "load did not finish";
}

TEST(E2eAdmission, AFailedModelWorkerBesideAHealthyOneGetsNoJob) {
  ECGQ_REQUIRE_BINARIES("ecgq-broker", "ecgq-worker", "ecgq");
  Broker broker;
  ASSERT_TRUE(broker.ready) << broker.diagnostics();
  auto c = connect(broker.endpoint);
  ChildProcess bad({bin("ecgq-worker"), "serve", "--broker", broker.endpoint, "--checkpoint",
                    "/nonexistent.pt", "--worker-id", "bad", "--model-retry", "200ms",
                    "--heartbeat-interval", "100ms", "--heartbeat-liveness", "20"});
  // Registered, failed with its reason, and the service is not available.
  ASSERT_TRUE(
      wait_until([&] { return worker_json(*c, "bad").value("state", "") == "failed"; }, 30s))
      << bad.stderr_text();
  EXPECT_NE(worker_json(*c, "bad").value("reason", "").find("/nonexistent.pt does not exist"),
            std::string::npos);
  EXPECT_EQ(check(broker.endpoint), 1);
  auto text = run_command({bin("ecgq"), "--broker", broker.endpoint, "status"}, 10s);
  EXPECT_NE(text.out.find("worker bad  state failed"), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("reason: checkpoint_not_found"), std::string::npos) << text.out;
  // It retries the load with backoff (200 ms, 400 ms, ...).
  EXPECT_TRUE(
      wait_until([&] { return count(bad.stderr_text(), "event=model_load_failed") >= 3; }, 30s))
      << bad.stderr_text();

  auto good = start_worker(broker.endpoint, "good");
  ASSERT_TRUE(wait_workers(*c, {"good"}, "warm", 60s)) << good->stderr_text();
  EXPECT_EQ(check(broker.endpoint), 0);
  std::vector<schema::Result> results;
  size_t sent = 0;
  steady_load(*c, 8, results, [&] { return ++sent > 1; });
  ASSERT_EQ(results.size(), 8u);
  for (const auto& r : results) {
    EXPECT_EQ(r.status, "ok") << (r.error ? r.error->code + ": " + r.error->message : "");
    EXPECT_EQ(r.worker_id, "good");
  }
  EXPECT_EQ(worker_json(*c, "bad").value("jobs_done", -1), 0);
  EXPECT_EQ(count(bad.stderr_text(), "event=job_received"), 0u);

  // The healthy worker leaves: nothing can answer any more.
  good->signal(SIGTERM);
  EXPECT_EQ(good->wait(30s), 0);
  EXPECT_TRUE(wait_until([&] { return check(broker.endpoint) == 1; }, 30s));
}

TEST(E2eAdmission, ExitOnLoadFailureExitsOne) {
  ECGQ_REQUIRE_BINARIES("ecgq-worker");
  auto run = run_command({bin("ecgq-worker"), "serve", "--broker", free_endpoint(), "--checkpoint",
                          "/nonexistent.pt", "--exit-on-load-failure", "true"},
                         30s);
  EXPECT_EQ(run.exit_code, 1) << run.err;
  EXPECT_NE(run.err.find("/nonexistent.pt"), std::string::npos) << run.err;
}

TEST_F(E2eAdmissionOneModel, AWorkerOfAnotherModelIsRefusedNamingBoth) {
  auto other = start_pretrained_worker(broker.endpoint, "pretrained");
  const std::string& served = first_sha;
  const std::string offered = sha256_of(pretrained_checkpoint());
  // Refused, and it tries again after model_retry: the refusal names both models, on both sides.
  ASSERT_TRUE(wait_until([&] { return count(other->stderr_text(), "event=refused ") >= 2; }, 30s))
      << other->stderr_text();
  for (const std::string& log : {other->stderr_text(), broker.proc->stderr_text()}) {
    EXPECT_NE(log.find("code=model_mismatch"), std::string::npos) << log;
    EXPECT_NE(log.find(served), std::string::npos) << log;
    EXPECT_NE(log.find(offered), std::string::npos) << log;
  }
  EXPECT_TRUE(worker_json(*c, "pretrained").empty());
  client::Json s = status_json(*c);
  EXPECT_EQ(s["services"]["ecg-fm"]["model"].value("sha256", ""), served);
  auto r = run_job(*c, ecg_job());
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, "ok");
  EXPECT_EQ(r->worker_id, "first");
  // The text status names each worker's model: short sha, kind, precision.
  auto text = run_command({bin("ecgq"), "--broker", broker.endpoint, "status"}, 10s);
  EXPECT_NE(text.out.find("model " + served.substr(0, 12) + " ecgfm fp32"), std::string::npos)
      << text.out;
}

TEST_F(E2eAdmissionOneModel, ARolloutUnderSteadyLoadFailsNoJob) {
  ChildProcess& old_worker = *first;
  const std::string& old_sha = first_sha;
  const std::string new_sha = sha256_of(pretrained_checkpoint());

  std::unique_ptr<ChildProcess> new_worker;
  std::unique_ptr<ChildProcess> rollout;
  std::vector<schema::Result> results;
  // The operator's procedure (docs/operations.md): start the new workers (refused until the
  // rollout), run the rollout, and let the old workers drain and leave.
  steady_load(*c, 4, results, [&] {
    if (results.size() >= 10 && !new_worker)
      new_worker = start_pretrained_worker(broker.endpoint, "new");
    if (new_worker && !rollout && count(new_worker->stderr_text(), "event=refused ") >= 1)
      rollout = std::make_unique<ChildProcess>(std::vector<std::string>{
          bin("ecgq"), "--broker", broker.endpoint, "rollout", "ecg-fm", "--to", new_sha});
    const size_t after = std::count_if(results.begin(), results.end(),
                                       [&](const auto& r) { return r.model.sha256 == new_sha; });
    return rollout && !old_worker.running() && after >= 10;
  });
  ASSERT_TRUE(rollout);
  EXPECT_EQ(rollout->wait(10s), 0) << rollout->stderr_text();
  EXPECT_NE(rollout->stdout_text().find(old_sha + " -> " + new_sha), std::string::npos)
      << rollout->stdout_text();
  // The old worker finished its jobs and left with exit 0; no job failed.
  EXPECT_EQ(old_worker.wait(10s), 0) << old_worker.stderr_text();
  EXPECT_NE(old_worker.stderr_text().find("code=model_retired"), std::string::npos);
  std::set<std::string> models;
  for (const auto& r : results) {
    EXPECT_EQ(r.status, "ok") << r.id << ": " << (r.error ? r.error->code : "");
    models.insert(r.model.sha256);
  }
  EXPECT_EQ(models, (std::set<std::string>{old_sha, new_sha}));
  client::Json s = status_json(*c);
  EXPECT_EQ(s["services"]["ecg-fm"]["model"].value("sha256", ""), new_sha);
}

TEST_F(E2eAdmissionOneModel, AJobPinnedToAModelNoWorkerHasGetsModelUnavailable) {
  const std::string& sha = first_sha;

  schema::Job pinned = ecg_job();
  pinned.model_sha256 = sha;
  auto ok = run_job(*c, pinned);
  ASSERT_TRUE(ok.has_value());
  EXPECT_EQ(ok->status, "ok");
  EXPECT_EQ(ok->model.sha256, sha);

  schema::Job elsewhere = ecg_job();
  elsewhere.model_sha256 = std::string(64, 'f');
  auto refused = run_job(*c, elsewhere);
  ASSERT_TRUE(refused.has_value());
  ASSERT_TRUE(refused->error.has_value());
  EXPECT_EQ(refused->error->code, "model_unavailable");
  EXPECT_EQ(refused->error->field, "model_sha256");
  EXPECT_NE(refused->error->message.find(sha), std::string::npos) << refused->error->message;

  // The same from the command line: the row says why, the exit code is 1.
  auto cli = run_command({bin("ecgq"), "--broker", broker.endpoint, "submit", "--model-sha256",
                          std::string(64, 'f'), data_path("ecg/HR06000.hea")},
                         30s);
  EXPECT_EQ(cli.exit_code, 1) << cli.err;
  EXPECT_NE(cli.out.find("model_unavailable"), std::string::npos) << cli.out;
  auto bad = run_command({bin("ecgq"), "--broker", broker.endpoint, "submit", "--model-sha256",
                          "abc", data_path("ecg/HR06000.hea")},
                         30s);
  EXPECT_EQ(bad.exit_code, 2) << bad.err;
}

TEST(E2eAdmission, APinnedPrecisionRefusesTheOtherPrecision) {
  ECGQ_REQUIRE_BINARIES("ecgq-broker", "ecgq-worker", "ecgq");
  Broker broker({"--pinned-precision", "ecg-fm=bf16"});
  ASSERT_TRUE(broker.ready) << broker.diagnostics();
  auto w = start_worker(broker.endpoint, "fp32-worker", {"--model-retry", "200ms"});
  ASSERT_TRUE(wait_until([&] { return count(w->stderr_text(), "event=refused ") >= 1; }, 60s))
      << w->stderr_text();
  EXPECT_NE(w->stderr_text().find("pins precision bf16"), std::string::npos) << w->stderr_text();
  EXPECT_EQ(check(broker.endpoint), 1);
  auto bad = run_command(
      {bin("ecgq-broker"), "--bind", free_endpoint(), "--pinned-precision", "ecg-fm=fp16"}, 10s);
  EXPECT_EQ(bad.exit_code, 2) << bad.err;
  EXPECT_NE(bad.err.find("pinned_precision"), std::string::npos) << bad.err;
}

}  // namespace
}  // namespace ecgq::test
