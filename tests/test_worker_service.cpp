// The worker's wire behaviour, driven from a ROUTER socket that plays the broker, with a fake
// model whose load and forward passes the test controls.
#include <unistd.h>

#include <thread>

#include "protocol/admission.hpp"
#include "protocol/extensions.hpp"
#include "tests/support/process.hpp"
#include "tests/test_worker_support.hpp"
#include "worker/worker_service.hpp"

using namespace ecgq;
using namespace ecgq::test;
using std::chrono::milliseconds;

namespace {

constexpr milliseconds kWait{10000};

ResolvedCheckpoint fake_resolved(const std::string& ref) {
  ResolvedCheckpoint r;
  r.path = ref;
  r.reference = ref;
  r.sha256 = std::string(64, 'a');
  return r;
}

// The string fields of a msgpack map (READY's model map also holds output and label lists).
std::map<std::string, std::string> string_fields(const msgpack::object& map) {
  std::map<std::string, std::string> out;
  for (const auto& [k, v] : map.as<std::map<std::string, msgpack::object>>())
    if (v.type == msgpack::type::STR) out[k] = v.as<std::string>();
  return out;
}

// A worker running on its own thread against a FakeBroker.
class Harness {
 public:
  Harness() : endpoint_(free_endpoint()) {}
  ~Harness() {
    control.load_gate.open();
    control.run_gate.open();
    if (service) service->request_stop();
    if (thread_.joinable()) thread_.join();
  }

  // Fast heartbeats and a long liveness so that only tests that want a reconnect get one.
  static WorkerServiceOptions options() {
    WorkerServiceOptions o;
    o.heartbeat_interval = milliseconds(50);
    o.heartbeat_liveness = 40;
    o.reconnect_min = milliseconds(50);
    o.reconnect_max = milliseconds(200);
    o.worker_id = "test-worker";
    return o;
  }

  void start(WorkerServiceOptions o = options(), JobRunnerOptions runner = {}) {
    broker = std::make_unique<FakeBroker>(endpoint_);
    o.broker = endpoint_;
    LifecycleOptions lifecycle;
    lifecycle.checkpoint = "/fake/model.pt";
    service = std::make_unique<WorkerService>(o, lifecycle, fake_loader(control), resolver, runner);
    thread_ = std::thread([this] { run_status = service->run(); });
  }

  // Waits for run() to return and gives its status.
  Status join() {
    if (thread_.joinable()) thread_.join();
    return run_status;
  }

  // Waits for READY and remembers the worker's identity.
  mdp::WorkerMessage ready() {
    auto r = broker->next(kWait);
    EXPECT_TRUE(r.has_value()) << "no READY";
    if (!r) return {};
    EXPECT_EQ(r->message.command, mdp::WorkerCommand::Ready);
    identity = r->identity;
    return r->message;
  }

  // The next non-heartbeat message; fails the test when none comes.
  mdp::WorkerMessage expect(mdp::WorkerCommand command) {
    auto r = broker->next(kWait);
    EXPECT_TRUE(r.has_value()) << "expected " << mdp::command_name(command) << ", got nothing";
    if (!r) return {};
    EXPECT_EQ(mdp::command_name(r->message.command), std::string(mdp::command_name(command)));
    return r->message;
  }

  schema::Progress expect_progress(const std::string& event) {
    auto m = expect(mdp::WorkerCommand::Partial);
    EXPECT_EQ(m.body.size(), 1u);
    if (m.body.empty()) return {};
    auto p = schema::decode_progress(m.body[0]);
    EXPECT_TRUE(p.ok()) << p.status().to_string();
    if (!p) return {};
    EXPECT_EQ(p->event, event);
    EXPECT_EQ(p->worker_id, "test-worker");
    return p.value();
  }

  schema::Result expect_final(const std::string& token) {
    auto m = expect(mdp::WorkerCommand::Final);
    EXPECT_EQ(m.reply_to, token);
    EXPECT_EQ(m.body.size(), 1u);
    if (m.body.empty()) return {};
    auto r = schema::decode_result(m.body[0]);
    EXPECT_TRUE(r.ok()) << r.status().to_string();
    return r.ok() ? r.value() : schema::Result{};
  }

  // Replaces the broker by a new one bound to the same endpoint (a broker restart).
  void restart_broker() {
    broker.reset();
    broker = std::make_unique<FakeBroker>(endpoint_);
  }

  void send_job(const std::string& token, const schema::Job& job) {
    broker->request(identity, token, schema::encode_job(job));
  }

  void wait_state(const std::string& state) {
    auto s = broker->status_until([&](const WorkerStatus& st) { return st.state == state; }, kWait);
    ASSERT_TRUE(s.has_value()) << "never reached state " << state;
  }

  FakeControl control;
  CheckpointResolver resolver = fake_resolved;  // set before start() to play a missing file
  std::unique_ptr<FakeBroker> broker;
  std::unique_ptr<WorkerService> service;
  std::string identity;
  Status run_status =
      Status(ErrorCode::Internal, "run() has not returned");  // not ok until run() returns

 private:
  std::string endpoint_;
  std::thread thread_;
};

}  // namespace

TEST(WorkerService, ReadyCarriesMetadata) {
  Harness h;
  auto o = Harness::options();
  o.capacity = 2;
  h.start(o);
  auto ready = h.ready();
  EXPECT_EQ(ready.service, "ecg-fm");
  ASSERT_EQ(ready.body.size(), 1u);
  msgpack::object_handle handle;
  auto m = msgpack_map(ready.body[0], handle);
  EXPECT_EQ(m.at("v").as<int>(), 1);
  EXPECT_EQ(m.at("capacity").as<int>(), 2);
  EXPECT_EQ(m.at("worker_id").as<std::string>(), "test-worker");
  EXPECT_EQ(m.at("pid").as<int64_t>(), static_cast<int64_t>(::getpid()));
  EXPECT_FALSE(m.at("host").as<std::string>().empty());
  EXPECT_EQ(m.at("state").as<std::string>(), "cold");
  auto model = string_fields(m.at("model"));
  EXPECT_EQ(model.at("name"), "/fake/model.pt");
  EXPECT_EQ(model.at("precision"), "fp32");
  EXPECT_TRUE(model.count("kind") && model.count("sha256"));

  // After the load, status heartbeats carry the checkpoint digest, which READY could not.
  h.wait_state("warm");
  bool with_digest = false;
  for (int i = 0; i < 50 && !with_digest; ++i) {
    auto m2 = h.broker->next_heartbeat_status(milliseconds(2000));
    if (!m2) break;
    msgpack::object_handle h2;
    auto st = msgpack_map(*m2, h2);
    if (!st.count("model")) continue;
    auto mm = string_fields(st.at("model"));
    with_digest = mm["sha256"] == std::string(64, 'a');
    EXPECT_EQ(st.at("capacity").as<int>(), 2);
  }
  EXPECT_TRUE(with_digest);
}

TEST(WorkerService, HeartbeatsContinueWhileTheModelLoads) {
  Harness h;
  h.control.load_gate.close();
  h.start();
  h.ready();
  // The loader is blocked until we open the gate, so these heartbeats all come during the load.
  for (int i = 0; i < 3; ++i) h.wait_state("warming");
  EXPECT_EQ(h.service->state(), WorkerState::Warming);
  h.control.load_gate.open();
  h.wait_state("warm");
  EXPECT_EQ(h.control.loads.load(), 1);
}

TEST(WorkerService, SleepsWhenIdleAndTheNextJobIsAColdStart) {
  Harness h;
  h.control.ballast_bytes = 64 << 20;
  auto o = Harness::options();
  o.idle_timeout = milliseconds(300);
  h.start(o);
  h.ready();
  auto warm = h.broker->status_until(
      [](const WorkerStatus& s) { return s.state == "warm" && s.rss_bytes > (64 << 20); }, kWait);
  ASSERT_TRUE(warm.has_value());
  auto asleep = h.broker->status_until(
      [&](const WorkerStatus& s) {
        return s.state == "asleep" && s.rss_bytes < warm->rss_bytes - (32 << 20);
      },
      kWait);
  ASSERT_TRUE(asleep.has_value()) << "no asleep status with the model's memory released";
  EXPECT_EQ(asleep->inflight, 0);

  const int runs_before_wake = h.control.runs.load();
  h.send_job("token-1", synthetic_job("job-1"));
  EXPECT_EQ(h.expect_progress("waking").id, "job-1");
  EXPECT_EQ(h.expect_progress("running").id, "job-1");
  auto first = h.expect_final("token-1");
  EXPECT_EQ(first.status, "ok");
  EXPECT_EQ(first.id, "job-1");
  EXPECT_TRUE(first.cold_start);
  EXPECT_GE(first.timings.wake_ms, first.timings.load_ms);
  EXPECT_EQ(first.n_segments, 2);
  EXPECT_EQ(first.worker_id, "test-worker");
  EXPECT_EQ(first.model.sha256, std::string(64, 'a'));
  EXPECT_EQ(first.model.name, "/fake/model.pt");
  // A wake for a job runs no warm-up pass on zeros: the job's own pass is the only one.
  EXPECT_EQ(h.control.runs.load(), runs_before_wake + 1);

  h.send_job("token-2", synthetic_job("job-2"));
  EXPECT_EQ(h.expect_progress("running").id, "job-2");
  auto second = h.expect_final("token-2");
  EXPECT_EQ(second.status, "ok");
  EXPECT_FALSE(second.cold_start);
  EXPECT_EQ(second.timings.wake_ms, 0);
  EXPECT_EQ(h.control.loads.load(), 2);
  auto done = h.broker->status_until([](const WorkerStatus& s) { return s.jobs_done == 2; }, kWait);
  EXPECT_TRUE(done.has_value());
}

TEST(WorkerService, MalformedBodyGetsAnErrorAndServingContinues) {
  Harness h;
  h.start();
  h.ready();
  h.wait_state("warm");
  h.broker->request(h.identity, "bad-token", std::string("\x93\x01\x02", 3));
  auto bad = h.expect_final("bad-token");
  EXPECT_EQ(bad.status, "error");
  ASSERT_TRUE(bad.error.has_value());
  EXPECT_EQ(bad.error->code, "bad_request");
  EXPECT_EQ(bad.worker_id, "test-worker");

  h.broker->request(h.identity, "empty-token", "");
  auto empty = h.expect_final("empty-token");
  EXPECT_EQ(empty.status, "error");

  h.send_job("good-token", synthetic_job("good"));
  h.expect_progress("running");
  auto good = h.expect_final("good-token");
  EXPECT_EQ(good.status, "ok");
  EXPECT_EQ(good.id, "good");
}

TEST(WorkerService, ModelExceptionBecomesInternalErrorAndServingContinues) {
  Harness h;
  h.start();
  h.ready();
  h.wait_state("warm");
  h.control.throw_on_run = true;
  h.send_job("t1", synthetic_job("boom"));
  h.expect_progress("running");
  auto boom = h.expect_final("t1");
  EXPECT_EQ(boom.status, "error");
  ASSERT_TRUE(boom.error.has_value());
  EXPECT_EQ(boom.error->code, "internal");
  EXPECT_NE(boom.error->message.find("fake model exploded"), std::string::npos);
  h.control.throw_on_run = false;
  h.send_job("t2", synthetic_job("fine"));
  h.expect_progress("running");
  EXPECT_EQ(h.expect_final("t2").status, "ok");
}

TEST(WorkerService, FailedLoadAnswersModelErrorThenRetriesOnTheNextJob) {
  Harness h;
  h.control.failing_loads = 1;
  auto o = Harness::options();
  o.warm_on_start = false;
  h.start(o);
  h.ready();
  h.send_job("t1", synthetic_job("first"));
  h.expect_progress("waking");
  auto failed = h.expect_final("t1");
  EXPECT_EQ(failed.status, "error");
  ASSERT_TRUE(failed.error.has_value());
  EXPECT_EQ(failed.error->code, "model_error");
  EXPECT_NE(failed.error->message.find("/fake/model.pt"), std::string::npos);
  EXPECT_NE(failed.error->message.find("fake failure"), std::string::npos);
  // Failed: the broker sends it no job until a retry (model_retry, 30 s here) or a job loads it.
  EXPECT_EQ(h.service->state(), WorkerState::Failed);
  h.wait_state("failed");

  h.send_job("t2", synthetic_job("second"));
  h.expect_progress("waking");
  h.expect_progress("running");
  auto ok = h.expect_final("t2");
  EXPECT_EQ(ok.status, "ok");
  EXPECT_TRUE(ok.cold_start);
  EXPECT_EQ(h.control.loads.load(), 2);
}

TEST(WorkerService, JobsArrivingDuringTheLoadWaitAndAreColdStarts) {
  Harness h;
  h.control.load_gate.close();
  auto o = Harness::options();
  o.capacity = 2;
  h.start(o);
  h.ready();
  h.wait_state("warming");
  h.send_job("t1", synthetic_job("a"));
  h.send_job("t2", synthetic_job("b"));
  EXPECT_EQ(h.expect_progress("waking").id, "a");
  EXPECT_EQ(h.expect_progress("waking").id, "b");
  auto busy = h.broker->status_until([](const WorkerStatus& s) { return s.inflight == 2; }, kWait);
  EXPECT_TRUE(busy.has_value());
  h.control.load_gate.open();
  // Both join the first batch after the load: one forward pass of 2 + 2 segments.
  EXPECT_EQ(h.expect_progress("running").id, "a");
  EXPECT_EQ(h.expect_progress("running").id, "b");
  auto a = h.expect_final("t1");
  auto b = h.expect_final("t2");
  EXPECT_TRUE(a.cold_start);
  EXPECT_TRUE(b.cold_start);
  EXPECT_GT(a.timings.wake_ms, 0);
  EXPECT_EQ(h.control.loads.load(), 1);
  EXPECT_EQ(a.batch_jobs, 2);
  EXPECT_EQ(b.batch_jobs, 2);
  EXPECT_EQ(a.batch_segments, 4);
  EXPECT_EQ(h.control.runs.load(), 2);  // the warm-up and the shared pass
}

TEST(WorkerService, ABatchWaitsForJobsUntilItHoldsTheWholeCapacity) {
  Harness h;
  auto o = Harness::options();
  o.capacity = 3;
  o.max_batch_delay = milliseconds(60000);  // far longer than kWait: only a full hand ends it
  JobRunnerOptions runner;
  runner.max_batch = 8;  // room for all three 2-segment jobs
  h.start(o, runner);
  h.ready();
  h.wait_state("warm");
  h.send_job("t1", synthetic_job("a"));
  h.send_job("t2", synthetic_job("b"));
  h.send_job("t3", synthetic_job("c"));
  for (const char* id : {"a", "b", "c"}) EXPECT_EQ(h.expect_progress("running").id, id);
  for (const char* token : {"t1", "t2", "t3"}) {
    auto r = h.expect_final(token);
    EXPECT_EQ(r.status, "ok");
    EXPECT_EQ(r.batch_jobs, 3);
    EXPECT_EQ(r.batch_segments, 6);
  }
  EXPECT_EQ(h.control.max_batch_seen.load(), 6);
}

TEST(WorkerService, ABatchStopsGatheringAtMaxBatchSegments) {
  Harness h;
  auto o = Harness::options();
  o.capacity = 4;
  o.max_batch_delay = milliseconds(60000);
  JobRunnerOptions runner;
  runner.max_batch = 4;
  h.start(o, runner);
  h.ready();
  h.wait_state("warm");
  h.send_job("t1", synthetic_job("a"));  // 2 segments each: two jobs fill a batch of 4
  h.send_job("t2", synthetic_job("b"));
  EXPECT_EQ(h.expect_progress("running").id, "a");
  EXPECT_EQ(h.expect_progress("running").id, "b");
  auto a = h.expect_final("t1");
  auto b = h.expect_final("t2");
  EXPECT_EQ(a.batch_jobs, 2);
  EXPECT_EQ(b.batch_segments, 4);
}

TEST(WorkerService, AJobWithADeadlineInsideTheBatchWindowDoesNotWait) {
  Harness h;
  auto o = Harness::options();
  o.capacity = 4;
  o.max_batch_delay = milliseconds(60000);
  h.start(o);
  h.ready();
  h.wait_state("warm");
  auto job = synthetic_job("hurry");
  job.deadline_ms = 30000;
  h.send_job("t1", job);
  h.expect_progress("running");
  auto r = h.expect_final("t1");
  EXPECT_EQ(r.status, "ok") << (r.error ? r.error->message : "");
  EXPECT_EQ(r.batch_jobs, 1);
}

TEST(WorkerService, WithoutADelayABatchTakesOnlyWhatIsQueued) {
  Harness h;
  auto o = Harness::options();
  o.capacity = 4;
  h.start(o);
  h.ready();
  h.wait_state("warm");
  h.control.run_gate.close();
  h.send_job("t1", synthetic_job("first"));
  h.expect_progress("running");  // first runs alone: nothing else was queued
  h.send_job("t2", synthetic_job("a"));
  h.send_job("t3", synthetic_job("b"));
  auto queued =
      h.broker->status_until([](const WorkerStatus& s) { return s.inflight == 3; }, kWait);
  EXPECT_TRUE(queued.has_value());
  h.control.run_gate.open();
  auto first = h.expect_final("t1");
  EXPECT_EQ(first.batch_jobs, 1);
  EXPECT_EQ(h.expect_progress("running").id, "a");
  EXPECT_EQ(h.expect_progress("running").id, "b");
  EXPECT_EQ(h.expect_final("t2").batch_jobs, 2);
  EXPECT_EQ(h.expect_final("t3").batch_jobs, 2);
}

TEST(WorkerService, StopFinishesTheJobInHandThenDisconnects) {
  Harness h;
  h.start();
  h.ready();
  h.wait_state("warm");
  h.control.run_gate.close();
  h.send_job("t1", synthetic_job("last"));
  h.expect_progress("running");
  h.service->request_stop();
  // A job that arrives while stopping is refused at once, not dropped.
  h.send_job("t2", synthetic_job("too-late"));
  auto refused = h.expect_final("t2");
  EXPECT_EQ(refused.status, "error");
  ASSERT_TRUE(refused.error.has_value());
  EXPECT_EQ(refused.error->code, "shutting_down");
  EXPECT_EQ(refused.id, "too-late");
  h.control.run_gate.open();
  auto last = h.expect_final("t1");
  EXPECT_EQ(last.status, "ok");
  h.expect(mdp::WorkerCommand::Disconnect);
  ASSERT_TRUE(wait_until([&] { return h.run_status.ok(); }, kWait)) << h.run_status.to_string();
}

TEST(WorkerService, ReRegistersAfterBrokerRestartAndDisconnect) {
  Harness h;
  auto o = Harness::options();
  o.heartbeat_liveness = 3;
  h.start(o);
  h.ready();
  h.wait_state("warm");
  // The broker process goes away and a new one binds the same endpoint without knowing the
  // worker; it stays silent, so the worker declares it gone and registers again.
  h.restart_broker();
  h.broker->echo_heartbeats = false;
  auto again = h.ready();
  ASSERT_EQ(again.body.size(), 1u);
  msgpack::object_handle handle;
  auto m = msgpack_map(again.body[0], handle);
  EXPECT_EQ(m.at("state").as<std::string>(), "warm");
  auto model = string_fields(m.at("model"));
  EXPECT_EQ(model.at("sha256"), std::string(64, 'a'));
  // After a load, READY also names what the model gives.
  using Fields = std::map<std::string, msgpack::object>;
  EXPECT_EQ(m.at("model").as<Fields>().count("outputs"), 1u);

  // A DISCONNECT from the broker also makes it register again.
  h.broker->echo_heartbeats = true;
  const int64_t readies = h.service->counters().readies.load();
  h.broker->send(h.identity, mdp::disconnect_frames());
  h.ready();
  EXPECT_GT(h.service->counters().readies.load(), readies);

  // Jobs still work on the new connection.
  h.send_job("t1", synthetic_job("after"));
  h.expect_progress("running");
  EXPECT_EQ(h.expect_final("t1").status, "ok");
}

TEST(WorkerService, KeepWarmWakesASleepingWorker) {
  Harness h;
  auto o = Harness::options();
  o.idle_timeout = milliseconds(200);
  h.start(o);
  h.ready();
  h.wait_state("warm");
  h.wait_state("asleep");
  h.broker->send(h.identity, mdp::heartbeat_frames(keep_warm_frame(true)));
  h.wait_state("warm");
  EXPECT_EQ(h.control.loads.load(), 2);
}

TEST(WorkerService, ResultsOfALostConnectionAreDropped) {
  Harness h;
  auto o = Harness::options();
  o.heartbeat_liveness = 3;
  h.start(o);
  h.ready();
  h.wait_state("warm");
  h.control.run_gate.close();
  h.send_job("old-token", synthetic_job("old"));
  h.expect_progress("running");
  // The broker restarts while the job runs; the new one re-dispatches nothing to us and must
  // never see a FINAL for a job token it did not hand out.
  h.restart_broker();
  h.broker->echo_heartbeats = false;
  h.ready();
  h.broker->echo_heartbeats = true;
  h.control.run_gate.open();
  h.send_job("new-token", synthetic_job("new"));
  // The old FINAL would come first (one compute thread); instead the new job's messages do.
  EXPECT_EQ(h.expect_progress("running").id, "new");
  auto r = h.expect_final("new-token");
  EXPECT_EQ(r.id, "new");
  auto idle = h.broker->status_until(
      [](const WorkerStatus& s) { return s.inflight == 0 && s.jobs_done == 2; }, kWait);
  EXPECT_TRUE(idle.has_value());
}

TEST(WorkerService, AMissingCheckpointRegistersFailedWithTheReasonAndIsRetried) {
  Harness h;
  std::atomic<int> lookups{0};
  h.resolver = [&](const std::string& ref) -> Expected<ResolvedCheckpoint> {
    if (lookups++ < 2)
      return Status("checkpoint_not_found", "checkpoint file " + ref + " does not exist");
    return fake_resolved(ref);
  };
  auto o = Harness::options();
  o.model_retry = milliseconds(100);
  h.start(o);
  auto ready = h.ready();
  ASSERT_EQ(ready.body.size(), 1u);
  auto meta = ext::decode_ready(ready.body[0]);
  ASSERT_TRUE(meta.ok());
  ASSERT_TRUE(meta->state.has_value());
  EXPECT_EQ(*meta->state, WorkerState::Failed);
  ASSERT_TRUE(meta->reason.has_value());
  EXPECT_NE(meta->reason->find("/fake/model.pt does not exist"), std::string::npos);
  // The first retry (after 100 ms) fails too; the second (200 ms later) loads the model.
  h.wait_state("warm");
  EXPECT_EQ(lookups.load(), 3);
  EXPECT_EQ(h.control.loads.load(), 1);
}

TEST(WorkerService, ExitOnLoadFailureEndsRunWithModelError) {
  Harness h;
  h.control.failing_loads = 1;
  auto o = Harness::options();
  o.exit_on_load_failure = true;
  h.start(o);
  const Status st = h.join();
  EXPECT_EQ(st.code(), "model_error") << st.to_string();
  EXPECT_NE(st.message().find("fake failure"), std::string::npos) << st.message();
}

TEST(WorkerService, ARetiredWorkerLeavesAndARefusedOneWaitsModelRetry) {
  Harness h;
  auto o = Harness::options();
  o.model_retry = milliseconds(300);
  h.start(o);
  h.ready();
  // Refused for its model: it registers again, but only after model_retry (not reconnect_min).
  mdp::Frames refused = mdp::disconnect_frames();
  refused.push_back(ext::encode_refusal({"model_mismatch", "service serves sha256 b; not a"}));
  const auto sent = std::chrono::steady_clock::now();
  h.broker->send(h.identity, refused);
  h.ready();
  EXPECT_GE(std::chrono::steady_clock::now() - sent, milliseconds(300));
  // Retired by a rollout: it stops.
  mdp::Frames retired = mdp::disconnect_frames();
  retired.push_back(ext::encode_refusal({"model_retired", "replaced by a rollout"}));
  h.broker->send(h.identity, retired);
  EXPECT_TRUE(h.join().ok());
}

TEST(WorkerService, AnExportRegistersAgainUnderItsSourceModelsSha256) {
  Harness h;
  h.control.source_sha256 = std::string(64, 'b');
  h.start();
  // READY names the file it found (sha256 'a...'); once loaded, the model says it is an export
  // of 'b...', and the worker registers again under that name (the first READY may not even
  // leave: its connection is closed at once).
  std::optional<ext::ReadyMetadata> renamed;
  for (int i = 0; i < 2 && !renamed; ++i) {
    auto ready = ext::decode_ready(h.ready().body.at(0));
    ASSERT_TRUE(ready.ok() && ready->model.has_value());
    if (ready->model->sha256 == std::string(64, 'b')) renamed = *ready;
  }
  ASSERT_TRUE(renamed.has_value());
  // The new READY leaves as the load ends: warming or warm, whichever the compute thread has
  // recorded by then (a status heartbeat says warm right after).
  EXPECT_TRUE(renamed->state == WorkerState::Warm || renamed->state == WorkerState::Warming)
      << state_name(*renamed->state);
  h.send_job("t1", synthetic_job("export"));
  h.expect_progress("running");
  EXPECT_EQ(h.expect_final("t1").model.sha256, std::string(64, 'b'));
}
