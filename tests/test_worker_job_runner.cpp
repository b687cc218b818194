// JobRunner: one job body -> one Result, with a fake model of ECG-FM's shapes.
#include <cstring>
#include <thread>

#include "tests/support/process.hpp"
#include "tests/test_worker_support.hpp"
#include "worker/batch_runner.hpp"
#include "worker/job_runner.hpp"

using namespace ecgq;
using namespace ecgq::test;

namespace {

JobContext context() {
  JobContext c;
  c.received = std::chrono::steady_clock::now();
  c.model = schema::ModelIdentity{"ecgfm", "/fake/model.pt", std::string(64, 'b'), "fp32"};
  return c;
}

JobRunner runner(int64_t max_batch = 8) {
  JobRunnerOptions o;
  o.max_batch = max_batch;
  o.worker_id = "w1";
  return JobRunner(o);
}

std::vector<float> floats(const schema::TypedArray& a) {
  std::vector<float> v(a.data.size() / sizeof(float));
  if (!v.empty()) std::memcpy(v.data(), a.data.data(), a.data.size());
  return v;
}

}  // namespace

TEST(JobRunner, DefaultOutputsAreProbsAndEmbedding) {
  FakeControl control;
  FakeModel model(control);
  auto r = runner().run(decoded(schema::encode_job(synthetic_job("j1"))), &model, context());
  ASSERT_EQ(r.status, "ok") << (r.error ? r.error->message : "");
  EXPECT_EQ(r.id, "j1");
  EXPECT_EQ(r.n_segments, 2);
  EXPECT_EQ(r.labels.size(), 3u);
  EXPECT_EQ(r.probs.size(), 3u);
  EXPECT_EQ(r.embedding.size(), 4u);
  EXPECT_TRUE(r.logits.empty());
  EXPECT_FALSE(r.segment_probs.has_value());
  EXPECT_FALSE(r.saliency.has_value());
  EXPECT_EQ(r.worker_id, "w1");
  EXPECT_EQ(r.batch_segments, 2);  // alone: its one pass held its 2 segments
  EXPECT_EQ(r.batch_jobs, 1);
  EXPECT_EQ(r.model.name, "/fake/model.pt");
  EXPECT_EQ(r.model.sha256, std::string(64, 'b'));
  EXPECT_EQ(r.attempts, 1);
  EXPECT_FALSE(r.cold_start);
  EXPECT_GE(r.timings.total_ms, r.timings.preprocess_ms + r.timings.infer_ms);
  // Embedding is the mean over segments of the fake's per-segment values (mean + e + row).
  EXPECT_NEAR(r.embedding[1] - r.embedding[0], 1.0f, 1e-5);
}

TEST(JobRunner, AllOutputsHaveTheirShapes) {
  FakeControl control;
  FakeModel model(control);
  auto job = synthetic_job("j2");
  job.outputs = {"probs", "logits", "embedding", "segments", "saliency"};
  auto r = runner().run(decoded(schema::encode_job(job)), &model, context());
  ASSERT_EQ(r.status, "ok") << (r.error ? r.error->message : "");
  EXPECT_EQ(r.logits.size(), 3u);
  ASSERT_TRUE(r.segment_probs.has_value());
  EXPECT_EQ(r.segment_probs->dtype, "f32");
  EXPECT_EQ(r.segment_probs->shape, (std::vector<int64_t>{2, 3}));
  ASSERT_TRUE(r.segment_embeddings.has_value());
  EXPECT_EQ(r.segment_embeddings->shape, (std::vector<int64_t>{2, 4}));
  ASSERT_TRUE(r.saliency.has_value());
  EXPECT_EQ(r.saliency->shape, (std::vector<int64_t>{2, 3}));
  // The fake's attention is 0.1 * (q + k) over 3 keys: the max over keys is 0.1 * (q + 2).
  auto sal = floats(*r.saliency);
  EXPECT_NEAR(sal[0], 0.2f, 1e-6);
  EXPECT_NEAR(sal[2], 0.4f, 1e-6);
  // Logits are the mean over segments of the per-segment logits (0.5 l - 0.25 + 0.1 row).
  EXPECT_NEAR(r.logits[0], -0.25f + 0.05f, 1e-6);
}

TEST(JobRunner, RunsSegmentsInBatchesOfAtMostMaxBatch) {
  FakeControl control;
  FakeModel model(control);
  auto job = synthetic_job("long", 30);
  job.outputs = {"segments"};
  auto r = runner(4).run(decoded(schema::encode_job(job)), &model, context());
  ASSERT_EQ(r.status, "ok") << (r.error ? r.error->message : "");
  EXPECT_EQ(r.n_segments, 6);
  EXPECT_EQ(control.max_batch_seen.load(), 4);
  EXPECT_EQ(control.runs.load(), 2);
  auto emb = floats(*r.segment_embeddings);
  ASSERT_EQ(emb.size(), 24u);
  // Rows are in segment order across batches: the fake adds its batch row index, so row 4 (first
  // of the second batch) is close to row 0 and row 3 is about 3 above it.
  EXPECT_NEAR(emb[4 * 4] - emb[0], 0.0f, 0.2);
  EXPECT_NEAR(emb[3 * 4] - emb[0], 3.0f, 0.2);
}

TEST(JobRunner, OutputsTheModelCannotGiveAreUnsupported) {
  FakeControl pretrained_control;
  pretrained_control.classifier = false;
  FakeModel pretrained(pretrained_control);
  auto job = synthetic_job("p");
  job.outputs = {"embedding", "probs"};
  auto r = runner().run(decoded(schema::encode_job(job)), &pretrained, context());
  ASSERT_EQ(r.status, "error");
  EXPECT_EQ(r.error->code, "unsupported_output");
  EXPECT_EQ(r.error->field, "outputs");
  EXPECT_NE(r.error->message.find("'probs'"), std::string::npos);
  EXPECT_EQ(r.id, "p");

  // Without a list, a pretrained model answers with the embedding only.
  auto d = runner().run(decoded(schema::encode_job(synthetic_job("d"))), &pretrained, context());
  ASSERT_EQ(d.status, "ok");
  EXPECT_TRUE(d.probs.empty());
  EXPECT_EQ(d.embedding.size(), 4u);

  FakeControl no_saliency;
  no_saliency.saliency = false;
  FakeModel ts(no_saliency);
  auto s = synthetic_job("s");
  s.outputs = {"saliency"};
  auto rs = runner().run(decoded(schema::encode_job(s)), &ts, context());
  ASSERT_EQ(rs.status, "error");
  EXPECT_EQ(rs.error->code, "unsupported_output");
  EXPECT_NE(rs.error->message.find("'saliency'"), std::string::npos);
}

TEST(JobRunner, PreprocessingErrorsPassThrough) {
  FakeControl control;
  FakeModel model(control);
  auto job = synthetic_job("short", 2);
  auto r = runner().run(decoded(schema::encode_job(job)), &model, context());
  ASSERT_EQ(r.status, "error");
  EXPECT_EQ(r.error->code, "too_short");
  EXPECT_EQ(r.id, "short");
  EXPECT_EQ(control.runs.load(), 0);
}

TEST(JobRunner, DispatchMetaAndContextReachTheResult) {
  FakeControl control;
  FakeModel model(control);
  auto job = synthetic_job("d");
  job.dispatch = schema::DispatchInfo{2, 150.0};
  msgpack::sbuffer meta;
  msgpack::packer<msgpack::sbuffer>(meta).pack(std::string("patient-7"));
  job.meta.assign(meta.data(), meta.size());
  auto ctx = context();
  ctx.cold_start = true;
  ctx.wake_ms = 40;
  ctx.load_ms = 30;
  auto r = runner().run(decoded(schema::encode_job(job)), &model, ctx);
  ASSERT_EQ(r.status, "ok");
  EXPECT_EQ(r.attempts, 2);
  EXPECT_EQ(r.timings.queued_ms, 150.0);
  EXPECT_GE(r.timings.total_ms, 150.0);
  EXPECT_TRUE(r.cold_start);
  EXPECT_EQ(r.timings.wake_ms, 40);
  EXPECT_EQ(r.timings.load_ms, 30);
  EXPECT_EQ(r.meta, job.meta);
}

TEST(JobRunner, FailuresBecomeErrorResults) {
  FakeControl control;
  control.throw_on_run = true;
  FakeModel model(control);
  auto body = schema::encode_job(synthetic_job("x"));
  auto r = runner().run(decoded(body), &model, context());
  ASSERT_EQ(r.status, "error");
  EXPECT_EQ(r.error->code, "internal");
  EXPECT_EQ(r.id, "x");

  auto m =
      runner().run(decoded(body), nullptr, context(),
                   Status(ErrorCode::ModelError, "cannot load checkpoint /fake/model.pt: bad zip"));
  ASSERT_EQ(m.status, "error");
  EXPECT_EQ(m.error->code, "model_error");
  EXPECT_NE(m.error->message.find("bad zip"), std::string::npos);

  auto g = runner().run(decoded("not msgpack at all"), &model, context());
  ASSERT_EQ(g.status, "error");
  EXPECT_EQ(g.error->code, "bad_request");
  EXPECT_EQ(g.worker_id, "w1");
}

TEST(JobRunner, DeadlineSpentInTheQueueIsExceededBeforeRunning) {
  FakeControl control;
  FakeModel model(control);
  auto job = synthetic_job("late");
  job.deadline_ms = 100;
  job.dispatch = schema::DispatchInfo{1, 150.0};
  auto r = runner().run(decoded(schema::encode_job(job)), &model, context());
  ASSERT_EQ(r.status, "error");
  EXPECT_EQ(r.error->code, "deadline_exceeded");
  EXPECT_EQ(r.error->field, "deadline_ms");
  EXPECT_EQ(control.runs.load(), 0);

  job.deadline_ms = 60000;
  auto ok = runner().run(decoded(schema::encode_job(job)), &model, context());
  EXPECT_EQ(ok.status, "ok");
}

TEST(JobRunner, PhasesShareAPassAndADeadlineThatRunsOutMidBatchFailsOnlyItsJob) {
  FakeControl control;
  FakeModel model(control);
  const JobRunner r = runner(2);
  auto a = synthetic_job("a");  // 2 segments each: passes [a a], [b b]
  auto b = synthetic_job("b");
  b.deadline_ms = 300;
  std::vector<PreparedJob> prepared;
  prepared.push_back(r.prepare(decoded(schema::encode_job(a)), &model, context()));
  prepared.push_back(r.prepare(decoded(schema::encode_job(b)), &model, context()));
  ASSERT_FALSE(prepared[0].failed);
  ASSERT_FALSE(prepared[1].failed);
  // The first pass is held until b's deadline has passed.
  control.run_gate.close();
  const auto b_deadline = *prepared[1].deadline;
  std::thread opener([&] {
    wait_until([&] { return std::chrono::steady_clock::now() > b_deadline; },
               std::chrono::seconds(10));
    control.run_gate.open();
  });
  std::vector<size_t> done;
  auto passes =
      BatchRunner(r.max_batch()).run_passes({&prepared[0], &prepared[1]}, model, [&](size_t i) {
        done.push_back(i);
      });
  opener.join();
  EXPECT_EQ(passes.size(), 1u);
  EXPECT_EQ(done, (std::vector<size_t>{0, 1}));
  auto ra = r.finish(prepared[0]);
  auto rb = r.finish(prepared[1]);
  EXPECT_EQ(ra.status, "ok");
  EXPECT_EQ(ra.batch_segments, 2);
  EXPECT_EQ(ra.batch_jobs, 1);
  ASSERT_EQ(rb.status, "error");
  EXPECT_EQ(rb.error->code, "deadline_exceeded");
  EXPECT_NE(rb.error->message.find("while running"), std::string::npos);
  EXPECT_EQ(rb.id, "b");
  EXPECT_TRUE(rb.probs.empty());

  // Two one-pass jobs in one pass: both know they shared it.
  const JobRunner wide = runner(8);
  std::vector<PreparedJob> both;
  both.push_back(wide.prepare(decoded(schema::encode_job(a)), &model, context()));
  both.push_back(wide.prepare(decoded(schema::encode_job(synthetic_job("c"))), &model, context()));
  auto shared = BatchRunner(wide.max_batch()).run_passes({&both[0], &both[1]}, model);
  ASSERT_EQ(shared.size(), 1u);
  EXPECT_EQ(shared[0].segments, 4);
  for (auto& p : both) {
    auto res = wide.finish(p);
    EXPECT_EQ(res.status, "ok");
    EXPECT_EQ(res.batch_jobs, 2);
    EXPECT_EQ(res.batch_segments, 4);
    EXPECT_EQ(res.n_segments, 2);
  }
}
