// End to end through the `ecgq` CLI: JSON lines for .npy records, status and its health check,
// and a broker that dies in the middle of a batch.
#include <csignal>
#include <fstream>
#include <set>
#include <sstream>

#include "records/npy.hpp"
#include "tests/test_e2e_cluster.hpp"

namespace ecgq::test {
namespace {

// The stdout lines of a CLI run, each parsed as JSON.
std::vector<client::Json> json_lines(const std::string& out) {
  std::vector<client::Json> lines;
  std::istringstream in(out);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    lines.push_back(client::Json::parse(line));  // throws (fails the test) on anything not JSON
  }
  return lines;
}

// A [12, samples] float32 .npy of a synthetic ECG in mV.
std::string write_ecg_npy(const TempDir& dir, const std::string& name, int64_t samples) {
  const std::string path = dir.file(name);
  const std::vector<float> v = synthetic_ecg(samples);
  EXPECT_TRUE(write_npy_f32(path, v.data(), {12, samples}).ok());
  return path;
}

TEST(E2eCli, SubmitNpyPrintsOneJsonLineWithProbsForEveryLabel) {
  ECGQ_REQUIRE_BINARIES("ecgq-broker", "ecgq-worker", "ecgq");
  Broker broker;
  ASSERT_TRUE(broker.ready) << broker.diagnostics();
  auto w = start_worker(broker.endpoint, "w1");
  TempDir dir;
  const std::string npy = write_ecg_npy(dir, "record.npy", 5000);

  auto run = run_command({bin("ecgq"), "--broker", broker.endpoint, "submit", npy}, 60s);
  ASSERT_EQ(run.exit_code, 0) << run.err;
  const auto lines = json_lines(run.out);
  ASSERT_EQ(lines.size(), 1u) << run.out;
  const client::Json& j = lines[0];
  EXPECT_EQ(j["path"], npy);
  EXPECT_EQ(j["status"], "ok");
  EXPECT_FALSE(j["id"].get<std::string>().empty());
  EXPECT_EQ(j["worker"], "w1");
  EXPECT_EQ(j["attempts"], 1);
  EXPECT_EQ(j["n_segments"], 2);
  EXPECT_EQ(j["model"]["kind"], "ecgfm");
  ASSERT_TRUE(j["probs"].is_object());
  EXPECT_EQ(j["probs"].size(), 17u);
  for (const auto& [label, p] : j["probs"].items()) {
    EXPECT_GE(p.get<double>(), 0.0) << label;
    EXPECT_LE(p.get<double>(), 1.0) << label;
  }
  for (const char* key : {"cold_start", "timings", "derived_leads", "ignored_channels"}) {
    EXPECT_TRUE(j.contains(key)) << key;
  }
  EXPECT_FALSE(j.contains("embedding"));  // only when asked
  EXPECT_FALSE(j.contains("error"));
}

TEST(E2eCli, OrderedOutputsEmbeddingAndLocalErrors) {
  ECGQ_REQUIRE_BINARIES("ecgq-broker", "ecgq-worker", "ecgq");
  Broker broker;
  ASSERT_TRUE(broker.ready) << broker.diagnostics();
  auto w1 = start_worker(broker.endpoint, "w1");
  auto w2 = start_worker(broker.endpoint, "w2");
  TempDir dir;
  std::vector<std::string> argv{bin("ecgq"),       "submit",   "--ordered", "--outputs",
                                "probs,embedding", "--window", "3"};
  std::vector<std::string> expected;
  for (int i = 0; i < 8; ++i) {
    // Alternate long and short records so that completion order differs from input order.
    const std::string p =
        write_ecg_npy(dir, "r" + std::to_string(i) + ".npy", i % 2 ? 2500 : 15000);
    argv.push_back(p);
    expected.push_back(p);
    if (i == 3) {
      argv.push_back(dir.file("missing.npy"));
      expected.push_back(dir.file("missing.npy"));
    }
  }
  auto run = run_command(argv, 120s, {{"ECGQ_BROKER", broker.endpoint}});
  EXPECT_EQ(run.exit_code, 1) << run.err;  // the missing file failed
  const auto lines = json_lines(run.out);
  ASSERT_EQ(lines.size(), expected.size()) << run.out;
  for (size_t i = 0; i < lines.size(); ++i) {
    EXPECT_EQ(lines[i]["path"], expected[i]);
    if (expected[i] == dir.file("missing.npy")) {
      EXPECT_EQ(lines[i]["status"], "error");
      EXPECT_EQ(lines[i]["error"]["code"], "not_found");
    } else {
      EXPECT_EQ(lines[i]["status"], "ok") << lines[i].dump();
      EXPECT_EQ(lines[i]["embedding"].size(), lines[0]["embedding"].size());
      EXPECT_GT(lines[i]["embedding"].size(), 0u);
    }
  }
}

TEST(E2eCli, StatusCheckExitCodes) {
  ECGQ_REQUIRE_BINARIES("ecgq-broker", "ecgq-worker", "ecgq");
  // No broker at all: exit 1 within the timeout.
  const std::string nowhere = free_endpoint();
  auto none = run_command(
      {bin("ecgq"), "--broker", nowhere, "status", "--check", "--timeout", "300ms"}, 10s);
  EXPECT_EQ(none.exit_code, 1) << none.err;
  EXPECT_NE(none.err.find("no reply from broker"), std::string::npos) << none.err;

  Broker broker;
  ASSERT_TRUE(broker.ready) << broker.diagnostics();
  const std::vector<std::string> check{bin("ecgq"), "--broker", broker.endpoint, "status",
                                       "--check"};
  EXPECT_EQ(run_command(check, 10s).exit_code, 1);  // broker up, no worker: mmi.service 404

  auto w = start_worker(broker.endpoint, "w1");
  EXPECT_TRUE(wait_until([&] { return run_command(check, 10s).exit_code == 0; }, 30s));

  auto readable = run_command({bin("ecgq"), "--broker", broker.endpoint, "status"}, 10s);
  EXPECT_EQ(readable.exit_code, 0) << readable.err;
  EXPECT_NE(readable.out.find("service ecg-fm"), std::string::npos) << readable.out;
  EXPECT_NE(readable.out.find("worker w1"), std::string::npos) << readable.out;

  auto json = run_command({bin("ecgq"), "--broker", broker.endpoint, "status", "--json"}, 10s);
  ASSERT_EQ(json.exit_code, 0) << json.err;
  client::Json s = client::Json::parse(json.out);
  ASSERT_TRUE(s["services"]["ecg-fm"]["workers"].is_array()) << json.out;
  EXPECT_EQ(s["services"]["ecg-fm"]["workers"][0].value("id", ""), "w1");
}

TEST(E2eCli, BrokerKilledMidBatchExitsOneWithAClearError) {
  ECGQ_REQUIRE_BINARIES("ecgq-broker", "ecgq-worker", "ecgq");
  Broker broker;
  ASSERT_TRUE(broker.ready) << broker.diagnostics();
  auto w = start_worker(broker.endpoint, "w1");
  TempDir dir;
  const std::string npy = write_ecg_npy(dir, "long.npy", 500 * 60);
  std::vector<std::string> argv{bin("ecgq"), "--broker", broker.endpoint,      "--timeout", "2s",
                                "submit",    "-o",       dir.file("out.jsonl")};
  for (int i = 0; i < 40; ++i) argv.push_back(npy);
  ChildProcess cli(argv);
  // Once the first result is written the batch is under way: kill the broker.
  auto written = [&] {
    std::ifstream in(dir.file("out.jsonl"));
    std::string line;
    return static_cast<bool>(std::getline(in, line));
  };
  ASSERT_TRUE(wait_until(written, 60s)) << cli.stderr_text();
  broker.proc->signal(SIGKILL);
  const int rc = cli.wait(30s);
  EXPECT_EQ(rc, 1) << cli.stderr_text();
  EXPECT_NE(cli.stderr_text().find("no reply from broker " + broker.endpoint), std::string::npos)
      << cli.stderr_text();
}

}  // namespace
}  // namespace ecgq::test

namespace ecgq::test {
namespace {

TEST(E2eCli, CtrlCCancelsQueuedJobsAndExits130) {
  ECGQ_REQUIRE_BINARIES("ecgq-broker", "ecgq");
  Broker broker;  // no worker: every job stays queued
  ASSERT_TRUE(broker.ready) << broker.diagnostics();
  TempDir dir;
  const std::string npy = write_ecg_npy(dir, "r.npy", 2500);
  std::vector<std::string> argv{bin("ecgq"), "--broker", broker.endpoint, "submit"};
  for (int i = 0; i < 5; ++i) argv.push_back(npy);
  ChildProcess cli(argv);
  auto c = connect(broker.endpoint);
  ASSERT_TRUE(wait_until(
      [&] {
        return json_int(status_json(*c), {"services", "ecg-fm", "queued"}) == 5;
      },
      30s))
      << cli.stderr_text();
  cli.signal(SIGINT);
  EXPECT_EQ(cli.wait(30s), 130) << cli.stderr_text();
  const auto lines = json_lines(cli.stdout_text());
  ASSERT_EQ(lines.size(), 5u) << cli.stdout_text();
  for (const auto& l : lines) {
    EXPECT_EQ(l["status"], "error");
    EXPECT_EQ(l["error"]["code"], "cancelled") << l.dump();
  }
  // Nothing is left queued (the broker may also drop the now empty, worker-less service).
  const client::Json after = status_json(*c);
  ASSERT_TRUE(after.is_object());
  EXPECT_LE(json_int(after, {"services", "ecg-fm", "queued"}), 0) << after.dump();
}

}  // namespace
}  // namespace ecgq::test

namespace ecgq::test {
namespace {

TEST(E2eCli, DirectoryInputsStreamEveryRecord) {
  ECGQ_REQUIRE_BINARIES("ecgq-broker", "ecgq-worker", "ecgq");
  Broker broker;
  ASSERT_TRUE(broker.ready) << broker.diagnostics();
  auto w = start_worker(broker.endpoint, "w1");
  TempDir dir;
  std::filesystem::create_directories(dir.file("batch/sub"));
  write_ecg_npy(dir, "batch/a.npy", 2500);
  write_ecg_npy(dir, "batch/sub/b.npy", 2500);
  write_ecg_npy(dir, "batch/sub/c.npy", 2500);
  std::ofstream(dir.file("batch/README.txt")) << "not a record\n";
  auto run = run_command({bin("ecgq"), "--broker", broker.endpoint, "submit", "--window", "2",
                          "--ordered", dir.file("batch")},
                         60s);
  ASSERT_EQ(run.exit_code, 0) << run.err;
  const auto lines = json_lines(run.out);
  ASSERT_EQ(lines.size(), 3u) << run.out;
  std::set<std::string> paths;
  for (const auto& l : lines) {
    EXPECT_EQ(l["status"], "ok");
    paths.insert(std::filesystem::path(l["path"].get<std::string>()).filename().string());
  }
  EXPECT_EQ(paths, (std::set<std::string>{"a.npy", "b.npy", "c.npy"}));
  EXPECT_NE(run.err.find("3 records: 3 ok, 0 failed"), std::string::npos) << run.err;
}

// Counts the occurrences of `needle` in `text`.
size_t count_of(const std::string& text, const std::string& needle) {
  size_t n = 0;
  for (auto at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) ++n;
  return n;
}

TEST(E2eCli, PlotWritesOneSvgPerRecordWithLeadsSaliencyAndLabels) {
  ECGQ_REQUIRE_BINARIES("ecgq-broker", "ecgq-worker", "ecgq");
  Broker broker;
  ASSERT_TRUE(broker.ready) << broker.diagnostics();
  auto w = start_worker(broker.endpoint, "w1");
  TempDir dir;
  const std::string record = source("data/ecg/1.hea");
  auto run = run_command(
      {bin("ecgq"), "--broker", broker.endpoint, "submit", "--plot", dir.file("plots"), record},
      60s);
  ASSERT_EQ(run.exit_code, 0) << run.err;
  std::vector<std::string> svgs;
  for (const auto& e : std::filesystem::directory_iterator(dir.file("plots")))
    svgs.push_back(e.path().string());
  ASSERT_EQ(svgs.size(), 1u);
  std::ifstream in(svgs[0]);
  const std::string svg((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(svg.rfind("<svg ", 0), 0u);
  EXPECT_EQ(count_of(svg, "class='t'"), 12u);                                 // one trace per lead
  EXPECT_EQ(count_of(svg, "class='hi'") + count_of(svg, "class='lo'"), 17u);  // one bar per label
  EXPECT_GT(count_of(svg, "class='s'"), 0u);        // the saliency overlay
  EXPECT_EQ(count_of(svg, "class='e'"), 12u * 2u);  // two segment ends per lead (10 s)
  EXPECT_NE(svg.find("infer: "), std::string::npos);
  // Only what the user asked for is printed: probs, although saliency was asked of the worker.
  const auto lines = json_lines(run.out);
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_FALSE(lines[0].contains("saliency"));
}

}  // namespace
}  // namespace ecgq::test
