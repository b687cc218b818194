// A worker serving a compact model file (ecgq-worker export) end to end (real broker, real
// workers, 127.0.0.1): it is its source model for admission (one model per service), for the
// result cache and in its results; and replacing or truncating the file under a warm worker
// changes nothing, while a later load refuses the damaged file by name and the worker lives on
// (and stops cleanly).
#include <gtest/gtest.h>

#include <csignal>
#include <filesystem>
#include <fstream>

#include "common/sha256.hpp"
#include "tests/test_e2e_cluster.hpp"

namespace ecgq::test {
namespace {

// Exports the tiny fine-tuned checkpoint to `out` at `precision` through the real CLI.
void export_tiny(const std::string& out, const std::string& precision) {
  auto run = run_command({bin("ecgq-worker"), "export", "--checkpoint", tiny_checkpoint(),
                          "--precision", precision, "--out", out},
                         120s);
  ASSERT_EQ(run.exit_code, 0) << run.err;
}

// A worker serving the model file at `path` under `id` (extra flags appended).
std::unique_ptr<ChildProcess> start_file_worker(const std::string& endpoint, const std::string& id,
                                                const std::string& path,
                                                std::vector<std::string> extra = {}) {
  std::vector<std::string> argv{bin("ecgq-worker"), "serve", "--broker",    endpoint,
                                "--checkpoint",     path,    "--worker-id", id,
                                "--threads",        "1",     "--log-level", "debug",
                                "--model-retry",    "200ms"};
  argv.insert(argv.end(), kHeartbeat.begin(), kHeartbeat.end());
  argv.insert(argv.end(), extra.begin(), extra.end());
  return std::make_unique<ChildProcess>(argv);
}

std::string error_of(const std::optional<schema::Result>& r) {
  return r && r->error ? r->error->code + ": " + r->error->message : "";
}

TEST(E2eModelFile, AnExportIsItsSourceModelForAdmissionTheCacheAndResults) {
  ECGQ_REQUIRE_BINARIES("ecgq-broker", "ecgq-worker");
  TempDir dir;
  const std::string model = dir.file("tiny.ecgq");
  export_tiny(model, "fp32");
  const std::string source_sha = sha256_file(tiny_checkpoint()).value();

  Broker broker;
  ASSERT_TRUE(broker.ready) << broker.diagnostics();
  auto c = connect(broker.endpoint);
  auto source = start_worker(broker.endpoint, "source");
  ASSERT_TRUE(wait_workers(*c, {"source"}, "warm", 60s)) << source->stderr_text();
  const schema::Job job = ecg_job();
  auto first = run_job(*c, job);
  ASSERT_TRUE(first && first->status == "ok") << error_of(first);
  EXPECT_EQ(first->model.sha256, source_sha);

  // The export joins the service the source model holds: admitted, no refusal.
  auto exported = start_file_worker(broker.endpoint, "export", model);
  ASSERT_TRUE(wait_workers(*c, {"export"}, "warm", 60s)) << exported->stderr_text();
  EXPECT_EQ(exported->stderr_text().find("event=refused"), std::string::npos);
  source->signal(SIGTERM);
  ASSERT_EQ(source->wait(30s), 0);

  // The same record again: the cache answers it, as for the source model.
  auto again = run_job(*c, job);
  ASSERT_TRUE(again && again->status == "ok") << error_of(again);
  EXPECT_TRUE(again->cached);
  EXPECT_EQ(again->probs, first->probs);

  // Another record is computed by the export, whose result names the source model.
  auto other = run_job(*c, ecg_job(5000));
  ASSERT_TRUE(other && other->status == "ok") << error_of(other);
  EXPECT_FALSE(other->cached);
  EXPECT_EQ(other->worker_id, "export");
  EXPECT_EQ(other->model.sha256, source_sha);
  EXPECT_EQ(other->model.precision, "fp32");
  EXPECT_EQ(other->model.kind, "ecgfm");
}

TEST(E2eModelFile, AFileDamagedUnderAWarmWorkerChangesNothingUntilTheNextLoadRefusesIt) {
  ECGQ_REQUIRE_BINARIES("ecgq-broker", "ecgq-worker");
  TempDir dir;
  const std::string model = dir.file("tiny.ecgq");
  export_tiny(model, "fp32");
  Broker broker;
  ASSERT_TRUE(broker.ready) << broker.diagnostics();
  auto c = connect(broker.endpoint);
  auto w = start_file_worker(broker.endpoint, "w", model, {"--idle-timeout", "1s"});
  ASSERT_TRUE(wait_workers(*c, {"w"}, "warm", 60s)) << w->stderr_text();
  auto before = run_job(*c, ecg_job());
  ASSERT_TRUE(before && before->status == "ok") << error_of(before);

  // Truncated in place while the worker holds the model: it keeps answering (it holds a
  // private verified copy, not a view of the file).
  std::filesystem::resize_file(model, 4096);
  auto during = run_job(*c, ecg_job(5000));
  ASSERT_TRUE(during && during->status == "ok") << error_of(during);
  EXPECT_TRUE(w->running());

  // After it sleeps, the next load reads the damaged file: refused by name, the worker lives.
  ASSERT_TRUE(wait_until(
      [&] { return w->stderr_text().find("event=model_asleep") != std::string::npos; }, 30s))
      << w->stderr_text();
  auto after = run_job(*c, ecg_job(7500), 30s);
  ASSERT_TRUE(after.has_value());
  EXPECT_NE(after->status, "ok");
  EXPECT_TRUE(
      wait_until([&] { return w->stderr_text().find("truncated") != std::string::npos; }, 30s))
      << w->stderr_text();
  EXPECT_TRUE(w->running());

  w->signal(SIGTERM);
  EXPECT_EQ(w->wait(30s), 0);
}

}  // namespace
}  // namespace ecgq::test
