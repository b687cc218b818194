// The real ecgq-worker binary with the tiny ECG-FM checkpoint, against a ROUTER playing the
// broker: serving, sleep/wake, SIGTERM during a job, and command-line errors.
#include <signal.h>

#include <fstream>
#include <sstream>

#include "tests/support/process.hpp"
#include "tests/test_worker_support.hpp"

using namespace ecgq;
using namespace ecgq::test;
using std::chrono::milliseconds;

namespace {

constexpr milliseconds kWait{20000};

std::string tiny_checkpoint() {
  return data_path("ecgfm/tiny_finetuned.pt");
}

// The published digest of a reference file, from ecgfm/SHA256SUMS.
std::string published_sha256(const std::string& name) {
  std::ifstream in(data_path("ecgfm/SHA256SUMS"));
  std::string digest, file;
  while (in >> digest >> file)
    if (file == name) return digest;
  return {};
}

// A worker process plus the ROUTER it registers with.
class WorkerProcess {
 public:
  explicit WorkerProcess(std::vector<std::string> extra = {}) : endpoint_(free_endpoint()) {
    broker = std::make_unique<FakeBroker>(endpoint_);
    std::vector<std::string> argv = {bin("ecgq-worker"),
                                     "serve",
                                     "--broker",
                                     endpoint_,
                                     "--checkpoint",
                                     tiny_checkpoint(),
                                     "--heartbeat-interval",
                                     "100ms",
                                     "--heartbeat-liveness",
                                     "50",
                                     "--worker-id",
                                     "proc-worker",
                                     "--threads",
                                     "1"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    process = std::make_unique<ChildProcess>(argv);
  }

  void ready() {
    auto r = broker->next(kWait);
    ASSERT_TRUE(r.has_value()) << "no READY; stderr:\n" << process->stderr_text();
    ASSERT_EQ(r->message.command, mdp::WorkerCommand::Ready);
    identity = r->identity;
  }

  mdp::WorkerMessage expect(mdp::WorkerCommand command) {
    auto r = broker->next(kWait);
    EXPECT_TRUE(r.has_value()) << "expected " << mdp::command_name(command) << "; stderr:\n"
                               << process->stderr_text();
    if (!r) return {};
    EXPECT_EQ(std::string(mdp::command_name(r->message.command)), mdp::command_name(command));
    return r->message;
  }

  std::string expect_progress() {
    auto m = expect(mdp::WorkerCommand::Partial);
    if (m.body.empty()) return {};
    auto p = schema::decode_progress(m.body[0]);
    return p ? p->event : "";
  }

  schema::Result expect_final(const std::string& token) {
    auto m = expect(mdp::WorkerCommand::Final);
    EXPECT_EQ(m.reply_to, token);
    if (m.body.empty()) return {};
    auto r = schema::decode_result(m.body[0]);
    EXPECT_TRUE(r.ok()) << r.status().to_string();
    return r.ok() ? r.value() : schema::Result{};
  }

  void wait_state(const std::string& state) {
    auto s = broker->status_until([&](const WorkerStatus& st) { return st.state == state; }, kWait);
    ASSERT_TRUE(s.has_value()) << "never " << state << "; stderr:\n" << process->stderr_text();
  }

  void send_job(const std::string& token, const schema::Job& job) {
    broker->request(identity, token, schema::encode_job(job));
  }

  std::unique_ptr<FakeBroker> broker;
  std::unique_ptr<ChildProcess> process;
  std::string identity;

 private:
  std::string endpoint_;
};

}  // namespace

TEST(WorkerProcess, ServesTheTinyCheckpoint) {
  WorkerProcess w;
  w.ready();
  w.wait_state("warm");
  auto job = synthetic_job("tiny-1");
  job.outputs = {"probs", "logits", "embedding", "segments", "saliency"};
  w.send_job("tok", job);
  EXPECT_EQ(w.expect_progress(), "running");
  auto r = w.expect_final("tok");
  ASSERT_EQ(r.status, "ok") << (r.error ? r.error->message : "");
  EXPECT_EQ(r.id, "tiny-1");
  EXPECT_EQ(r.labels.size(), 17u);
  EXPECT_EQ(r.probs.size(), 17u);
  EXPECT_EQ(r.logits.size(), 17u);
  EXPECT_EQ(r.embedding.size(), 64u);
  EXPECT_EQ(r.n_segments, 2);
  ASSERT_TRUE(r.saliency.has_value());
  EXPECT_EQ(r.saliency->shape.at(0), 2);
  EXPECT_EQ(r.model.kind, "ecgfm");
  EXPECT_EQ(r.model.name, tiny_checkpoint());
  EXPECT_EQ(r.model.sha256, published_sha256("tiny_finetuned.pt"));
  EXPECT_EQ(r.model.precision, "fp32");
  EXPECT_EQ(r.worker_id, "proc-worker");
  EXPECT_FALSE(r.cold_start);
  for (float p : r.probs) {
    EXPECT_GT(p, 0.0f);
    EXPECT_LT(p, 1.0f);
  }
}

TEST(WorkerProcess, SleepsAfterIdleTimeoutAndWakesForTheNextJob) {
  WorkerProcess w({"--idle-timeout", "300ms"});
  w.ready();
  w.wait_state("warm");
  w.wait_state("asleep");
  w.send_job("t1", synthetic_job("cold"));
  EXPECT_EQ(w.expect_progress(), "waking");
  EXPECT_EQ(w.expect_progress(), "running");
  auto cold = w.expect_final("t1");
  ASSERT_EQ(cold.status, "ok") << (cold.error ? cold.error->message : "");
  EXPECT_TRUE(cold.cold_start);
  EXPECT_GT(cold.timings.load_ms, 0);
  EXPECT_GE(cold.timings.wake_ms, cold.timings.load_ms);
  w.send_job("t2", synthetic_job("warm"));
  EXPECT_EQ(w.expect_progress(), "running");
  auto warm = w.expect_final("t2");
  EXPECT_EQ(warm.status, "ok");
  EXPECT_FALSE(warm.cold_start);
  EXPECT_NE(w.process->stderr_text().find("event=model_asleep"), std::string::npos);
}

TEST(WorkerProcess, SigtermDuringAJobSendsItsFinalThenDisconnectAndExitsZero) {
  WorkerProcess w;
  w.ready();
  w.wait_state("warm");
  w.send_job("t1", synthetic_job("long", 600));  // 120 segments: still running at the signal
  EXPECT_EQ(w.expect_progress(), "running");
  w.process->signal(SIGTERM);
  auto r = w.expect_final("t1");
  EXPECT_EQ(r.status, "ok") << (r.error ? r.error->message : "");
  EXPECT_EQ(r.n_segments, 120);
  w.expect(mdp::WorkerCommand::Disconnect);
  EXPECT_EQ(w.process->wait(kWait), 0) << w.process->stderr_text();
}

TEST(WorkerProcess, MalformedJobIsAnErrorAndTheWorkerKeepsServing) {
  WorkerProcess w({"--warm-on-start", "false"});
  w.ready();
  w.broker->request(w.identity, "bad", "\xc1");
  auto bad = w.expect_final("bad");
  EXPECT_EQ(bad.status, "error");
  ASSERT_TRUE(bad.error.has_value());
  EXPECT_EQ(bad.error->code, "bad_request");
  w.send_job("good", synthetic_job("after-bad"));
  EXPECT_EQ(w.expect_progress(), "waking");
  EXPECT_EQ(w.expect_progress(), "running");
  EXPECT_EQ(w.expect_final("good").status, "ok");
}

TEST(WorkerProcess, MissingCheckpointFileIsAModelErrorNamingIt) {
  TempDir dir;
  const std::string missing = dir.file("nope.pt");
  auto endpoint = free_endpoint();
  FakeBroker broker(endpoint);
  ChildProcess p({bin("ecgq-worker"), "serve", "--broker", endpoint, "--checkpoint", missing,
                  "--heartbeat-interval", "100ms", "--heartbeat-liveness", "50"});
  auto ready = broker.next(kWait);
  ASSERT_TRUE(ready.has_value()) << p.stderr_text();
  broker.request(ready->identity, "t", schema::encode_job(synthetic_job("m")));
  std::optional<schema::Result> result;
  while (auto m = broker.next(kWait)) {
    if (m->message.command != mdp::WorkerCommand::Final) continue;
    result = schema::decode_result(m->message.body.at(0)).value();
    break;
  }
  ASSERT_TRUE(result.has_value()) << p.stderr_text();
  EXPECT_EQ(result->status, "error");
  EXPECT_EQ(result->error->code, "model_error");
  EXPECT_NE(result->error->message.find(missing), std::string::npos);
  EXPECT_TRUE(p.running());
}

TEST(WorkerProcess, CommandLine) {
  auto version = run_command({bin("ecgq-worker"), "--version"}, milliseconds(10000));
  EXPECT_EQ(version.exit_code, 0);
  EXPECT_NE(version.out.find("ecgq-worker"), std::string::npos);
  auto no_ckpt = run_command({bin("ecgq-worker"), "serve"}, milliseconds(10000));
  EXPECT_EQ(no_ckpt.exit_code, 2);
  EXPECT_NE(no_ckpt.err.find("checkpoint"), std::string::npos);
  auto bad =
      run_command({bin("ecgq-worker"), "serve", "--checkpoint", "x", "--idle-timeout", "soon"},
                  milliseconds(10000));
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.err.find("idle_timeout"), std::string::npos);
  auto env = run_command({bin("ecgq-worker"), "serve", "--checkpoint", "x"}, milliseconds(10000),
                         {{"ECGQ_CAPACITY", "zero"}});
  EXPECT_EQ(env.exit_code, 2);
  EXPECT_NE(env.err.find("ECGQ_CAPACITY"), std::string::npos);
  TempDir dir;
  { std::ofstream(dir.file("w.yaml")) << "idle_timout: 5m\n"; }
  auto yaml = run_command({bin("ecgq-worker"), "serve", "--config", dir.file("w.yaml")},
                          milliseconds(10000));
  EXPECT_EQ(yaml.exit_code, 2);
  EXPECT_NE(yaml.err.find("idle_timout"), std::string::npos);
}

TEST(WorkerProcess, ShippedConfigDeclaresEverySetting) {
  // Every key of config/worker.yaml is a known setting (an unknown one would exit 2), and the
  // file parses; the missing checkpoint is then the only complaint.
  auto r = run_command({bin("ecgq-worker"), "serve", "--config", source("config/worker.yaml")},
                       milliseconds(10000));
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("needs a checkpoint"), std::string::npos) << r.err;
}
