// Dynamic batching: JobRunner's phases and BatchRunner on the real tiny model, then real
// ecgq-broker and ecgq-worker processes sharing forward passes between jobs.
#include <cmath>
#include <cstring>
#include <map>
#include <set>

#include "protocol/decoded_job.hpp"
#include "tests/test_e2e_cluster.hpp"
#include "worker/batch_runner.hpp"
#include "worker/job_runner.hpp"

namespace ecgq::test {
namespace {

constexpr float kTolerance = 1e-5f;

// A job body decoded as the worker decodes it on receipt (JobRunner takes decoded jobs).
Expected<schema::DecodedJob> decoded(std::string body) {
  return schema::DecodedJob::decode(std::move(body));
}

// A different 12-lead record for each `k` (amplitudes, rhythm and noise vary), `seconds` long.
schema::Job record(int k, double seconds) {
  const int64_t samples = static_cast<int64_t>(seconds * 500);
  std::vector<float> v(static_cast<size_t>(12 * samples));
  for (int64_t l = 0; l < 12; ++l)
    for (int64_t t = 0; t < samples; ++t) {
      const double x = static_cast<double>(t) / 500.0;
      v[static_cast<size_t>(l * samples + t)] = static_cast<float>(
          (0.5 + 0.2 * k) * std::sin(2 * M_PI * (0.9 + 0.25 * k) * x + 0.3 * l) +
          0.15 * std::sin(2 * M_PI * (11.0 + 3 * k) * x) + 0.05 * std::cos(0.7 * t * (k + 1)));
    }
  return f32_job(v);
}

std::vector<float> floats(const schema::TypedArray& a) {
  std::vector<float> v(a.data.size() / sizeof(float));
  if (!v.empty()) std::memcpy(v.data(), a.data.data(), a.data.size());
  return v;
}

void expect_close(const std::vector<float>& a, const std::vector<float>& b,
                  const std::string& what) {
  ASSERT_EQ(a.size(), b.size()) << what;
  ASSERT_FALSE(a.empty()) << what;
  float worst = 0;
  for (size_t i = 0; i < a.size(); ++i) worst = std::max(worst, std::fabs(a[i] - b[i]));
  EXPECT_LE(worst, kTolerance) << what << ": max |diff| " << worst;
}

// ------------------------------------------------------------ phases on the real tiny model

class BatchPhases : public ::testing::Test {
 protected:
  void SetUp() override {
    LoadOptions o;
    o.intra_op_threads = 1;
    auto m = load_model(tiny_checkpoint(), o);
    ASSERT_TRUE(m.ok()) << m.status().to_string();
    model = std::move(m.value());
  }

  JobContext context() const {
    JobContext c;
    c.received = std::chrono::steady_clock::now();
    c.model = schema::ModelIdentity{"ecgfm", tiny_checkpoint(), std::string(64, 'c'), "fp32"};
    return c;
  }

  static std::string body(const std::string& id, int k, double seconds,
                          std::vector<std::string> outputs = {"probs", "embedding", "segments"}) {
    schema::Job j = record(k, seconds);
    j.id = id;
    j.outputs = std::move(outputs);
    return schema::encode_job(j);
  }

  JobRunner runner(int64_t max_batch) const {
    JobRunnerOptions o;
    o.max_batch = max_batch;
    o.worker_id = "phases";
    return JobRunner(o);
  }

  std::unique_ptr<Model> model;
};

TEST_F(BatchPhases, SegmentsOfSeveralJobsSplitBackToTheirJobs) {
  // 1 + 3 + 2 segments in passes of 3: [a, b b], [b, c c]; b spans both passes.
  const std::vector<std::string> bodies = {body("a", 1, 5), body("b", 2, 15), body("c", 3, 10)};
  std::vector<schema::Result> alone;
  for (const auto& b : bodies) alone.push_back(runner(8).run(decoded(b), model.get(), context()));

  const JobRunner r = runner(3);
  std::vector<PreparedJob> prepared;
  for (const auto& b : bodies) prepared.push_back(r.prepare(decoded(b), model.get(), context()));
  std::vector<PreparedJob*> jobs;
  for (auto& p : prepared) {
    ASSERT_FALSE(p.failed) << p.result.error->message;
    jobs.push_back(&p);
  }
  std::vector<std::pair<size_t, size_t>> done;  // (job, passes run when it was handed back)
  std::vector<PassReport> passes;
  passes = BatchRunner(r.max_batch()).run_passes(jobs, *model, [&](size_t i) {
    done.push_back({i, prepared[i].segments_done});
  });
  ASSERT_EQ(passes.size(), 2u);
  for (const auto& p : passes) {
    EXPECT_EQ(p.segments, 3);
    EXPECT_EQ(p.jobs, 2);
    EXPECT_TRUE(p.ok);
  }
  // a is handed back after the first pass, before b and c are complete.
  ASSERT_EQ(done.size(), 3u);
  EXPECT_EQ(done[0].first, 0u);

  for (size_t i = 0; i < bodies.size(); ++i) {
    const schema::Result batched = r.finish(prepared[i]);
    ASSERT_EQ(batched.status, "ok") << batched.id;
    ASSERT_EQ(alone[i].status, "ok") << alone[i].id;
    EXPECT_EQ(batched.id, alone[i].id);
    EXPECT_EQ(batched.n_segments, alone[i].n_segments);
    EXPECT_EQ(batched.batch_segments, 3);
    EXPECT_EQ(batched.batch_jobs, 2);
    EXPECT_EQ(alone[i].batch_jobs, 1);
    EXPECT_EQ(alone[i].batch_segments, alone[i].n_segments);
    expect_close(batched.probs, alone[i].probs, batched.id + " probs");
    expect_close(batched.embedding, alone[i].embedding, batched.id + " embedding");
    expect_close(floats(*batched.segment_probs), floats(*alone[i].segment_probs),
                 batched.id + " segment_probs");
    EXPECT_GT(batched.timings.infer_ms, 0);
  }
  // Different records give different answers, so a mixed-up row would have shown.
  EXPECT_GT(std::fabs(alone[0].probs[0] - alone[1].probs[0]) +
                std::fabs(alone[1].probs[0] - alone[2].probs[0]),
            1e-4);
}

TEST_F(BatchPhases, SaliencyJobsRunInTheirOwnPassesAndFailedJobsComeBackFirst) {
  const std::vector<std::string> bodies = {body("plain", 1, 5), "not a job",
                                           body("sal", 2, 10, {"probs", "saliency"}),
                                           body("plain2", 3, 5)};
  const JobRunner r = runner(8);
  std::vector<PreparedJob> prepared;
  for (const auto& b : bodies) prepared.push_back(r.prepare(decoded(b), model.get(), context()));
  ASSERT_TRUE(prepared[1].failed);
  std::vector<PreparedJob*> jobs;
  for (auto& p : prepared) jobs.push_back(&p);
  std::vector<size_t> order;
  auto passes =
      BatchRunner(r.max_batch()).run_passes(jobs, *model, [&](size_t i) { order.push_back(i); });
  ASSERT_EQ(passes.size(), 2u);
  EXPECT_EQ(passes[0].segments, 2);  // plain + plain2
  EXPECT_EQ(passes[0].jobs, 2);
  EXPECT_EQ(passes[1].segments, 2);  // sal alone
  EXPECT_EQ(passes[1].jobs, 1);
  ASSERT_EQ(order.size(), 4u);
  EXPECT_EQ(order[0], 1u);

  const schema::Result bad = r.finish(prepared[1]);
  EXPECT_EQ(bad.status, "error");
  EXPECT_EQ(bad.error->code, "bad_request");
  const schema::Result sal = r.finish(prepared[2]);
  ASSERT_EQ(sal.status, "ok");
  EXPECT_EQ(sal.batch_jobs, 1);
  auto sal_alone = runner(8).run(decoded(bodies[2]), model.get(), context());
  ASSERT_TRUE(sal.saliency.has_value());
  expect_close(floats(*sal.saliency), floats(*sal_alone.saliency), "saliency");
  expect_close(sal.probs, sal_alone.probs, "saliency job probs");
  for (size_t i : {0u, 3u}) {
    const schema::Result plain = r.finish(prepared[i]);
    ASSERT_EQ(plain.status, "ok");
    EXPECT_EQ(plain.batch_jobs, 2);
    EXPECT_FALSE(plain.saliency.has_value());
    expect_close(plain.probs, runner(8).run(decoded(bodies[i]), model.get(), context()).probs,
                 plain.id);
  }
}

// ------------------------------------------------------------ real broker and worker processes

// A broker and one worker started with `worker_flags`; warm when constructed successfully.
struct Cluster {
  explicit Cluster(std::vector<std::string> worker_flags) {
    if (!broker.ready) return;
    worker = start_worker(broker.endpoint, "wb", std::move(worker_flags));
    client = connect(broker.endpoint);
    ready = wait_workers(*client, {"wb"});
  }
  std::string diagnostics() {
    return broker.diagnostics() + "\nworker: " + (worker ? worker->stderr_text() : "");
  }

  // Submits every job at once and waits for all their results (by id).
  std::map<std::string, schema::Result> run_all(const std::vector<schema::Job>& jobs) {
    std::map<std::string, schema::Result> results;
    std::set<std::string> ids;
    for (const auto& j : jobs) {
      auto id = client->submit(j);
      EXPECT_TRUE(id.ok()) << id.status().to_string();
      if (id) ids.insert(*id);
    }
    const auto until = std::chrono::steady_clock::now() + 60s;
    while (results.size() < ids.size() && std::chrono::steady_clock::now() < until) {
      auto ev = client->poll(100ms);
      if (!ev) {
        ADD_FAILURE() << ev.status().to_string();
        break;
      }
      if (ev->has_value() && (*ev)->result) results[(*ev)->id] = *(*ev)->result;
    }
    EXPECT_EQ(results.size(), ids.size()) << "missing results; " << diagnostics();
    return results;
  }

  Broker broker;
  std::unique_ptr<ChildProcess> worker;
  std::unique_ptr<client::Client> client;
  bool ready = false;
};

schema::Job named(const std::string& id, schema::Job j) {
  j.id = id;
  return j;
}

const std::vector<std::string> kBatching = {"--capacity",           "4",   "--max-batch", "8",
                                            "--max-batch-delay-ms", "2000"};
const std::vector<std::string> kSolo = {"--capacity",           "1", "--max-batch", "8",
                                        "--max-batch-delay-ms", "0"};

TEST(WorkerBatching, JobsShareForwardPassesAndMatchTheirSoloResults) {
  ECGQ_REQUIRE_BINARIES("ecgq-broker", "ecgq-worker");
  const std::vector<schema::Job> singles = {named("s0", record(0, 5)), named("s1", record(1, 5)),
                                            named("s2", record(2, 5)), named("s3", record(3, 5))};
  const std::vector<schema::Job> big = {named("small", record(4, 5)),
                                        named("big", record(5, 60))};  // 12 segments > max_batch
  std::map<std::string, schema::Result> solo;
  {
    Cluster c(kSolo);
    ASSERT_TRUE(c.ready) << c.diagnostics();
    solo = c.run_all(singles);
    for (auto& [id, r] : c.run_all(big)) solo[id] = r;
  }
  ASSERT_EQ(solo.size(), 6u);
  for (const auto& [id, r] : solo) {
    ASSERT_EQ(r.status, "ok") << id << ": " << (r.error ? r.error->message : "");
    EXPECT_EQ(r.batch_jobs, 1) << id << " shared a pass on a capacity-1 worker";
    EXPECT_EQ(r.batch_segments, std::min<int64_t>(r.n_segments, 8)) << id;
  }
  EXPECT_EQ(solo["big"].n_segments, 12);

  Cluster c(kBatching);
  ASSERT_TRUE(c.ready) << c.diagnostics();
  auto batched = c.run_all(singles);
  for (auto& [id, r] : c.run_all(big)) batched[id] = r;
  ASSERT_EQ(batched.size(), 6u);
  int64_t most_jobs = 0;
  for (const auto& [id, r] : batched) {
    ASSERT_EQ(r.status, "ok") << id << ": " << (r.error ? r.error->message : "");
    EXPECT_GE(r.batch_jobs, 1) << id;
    EXPECT_LE(r.batch_segments, 8) << id;
    if (id != "small" && id != "big") most_jobs = std::max(most_jobs, r.batch_jobs);
    expect_close(r.probs, solo[id].probs, id + " probs (batched vs alone)");
    expect_close(r.embedding, solo[id].embedding, id + " embedding (batched vs alone)");
  }
  // Four one-segment jobs in flight at once, with two seconds to gather: they shared a pass.
  EXPECT_GT(most_jobs, 1) << c.diagnostics();
  EXPECT_EQ(batched["big"].n_segments, 12);
  EXPECT_EQ(batched["big"].batch_segments, 8);
  // Every forward pass is logged with its segments, jobs and the job ids.
  EXPECT_NE(c.worker->stderr_text().find("event=batch segments="), std::string::npos);
}

TEST(WorkerBatching, ABadJobInTheMiddleOfABatchGetsItsOwnError) {
  ECGQ_REQUIRE_BINARIES("ecgq-broker", "ecgq-worker");
  Cluster c(kBatching);
  ASSERT_TRUE(c.ready) << c.diagnostics();
  const std::vector<schema::Job> jobs = {named("ok-a", record(0, 5)),
                                         named("too-short", record(1, 2)),
                                         named("ok-b", record(2, 10)), named("ok-c", record(3, 5))};
  auto results = c.run_all(jobs);
  ASSERT_EQ(results.size(), 4u);
  const schema::Result& bad = results["too-short"];
  EXPECT_EQ(bad.status, "error");
  ASSERT_TRUE(bad.error.has_value());
  EXPECT_EQ(bad.error->code, "too_short");
  EXPECT_EQ(bad.batch_jobs, 0);
  for (const char* id : {"ok-a", "ok-b", "ok-c"}) {
    const schema::Result& r = results[id];
    EXPECT_EQ(r.status, "ok") << id << ": " << (r.error ? r.error->message : "");
    EXPECT_EQ(r.probs.size(), 17u) << id;
    EXPECT_GE(r.batch_jobs, 1) << id;
  }
  // The worker is still serving.
  auto after = run_job(*c.client, named("after", record(4, 5)));
  ASSERT_TRUE(after.has_value());
  EXPECT_EQ(after->status, "ok");
}

TEST(WorkerBatching, SettingsAreValidated) {
  ECGQ_REQUIRE_BINARIES("ecgq-worker");
  struct Case {
    std::vector<std::string> flags;
    std::string expect;
  };
  // Each case starts a process that loads LibTorch, so only the boundaries.
  const std::vector<Case> cases = {
      {{"--max-batch", "0"}, "setting max_batch = 0 (from flag --max-batch): expected at least 1"},
      {{"--max-batch", "5000"}, "expected at most 1024"},
      {{"--max-batch-delay-ms", "-5"}, "setting max_batch_delay_ms = -5"},
      {{"--max-batch-delay-ms", "600000"}, "expected at most 60000 ms"},
  };
  for (const auto& c : cases) {
    std::vector<std::string> argv = {bin("ecgq-worker"), "serve", "--checkpoint", "x"};
    argv.insert(argv.end(), c.flags.begin(), c.flags.end());
    auto r = run_command(argv, 10000ms);
    EXPECT_EQ(r.exit_code, 2) << c.flags[0] << " " << c.flags[1];
    EXPECT_NE(r.err.find(c.expect), std::string::npos)
        << c.flags[0] << " " << c.flags[1] << ": " << r.err;
  }
}

}  // namespace
}  // namespace ecgq::test
