// End to end through `ecgq submit` as a producer of many records: thousands of generated .npy and
// WFDB records through a real broker and two workers (each answered once, resume sends nothing),
// CSV output, the embeddings .npy and its index, --fail-fast, too_long and usage errors.
#include <cstdio>
#include <fstream>
#include <set>
#include <sstream>

#include "records/npy.hpp"
#include "tests/test_e2e_cluster.hpp"

namespace ecgq::test {
namespace {

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::vector<std::string> text_lines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line))
    if (!line.empty()) lines.push_back(line);
  return lines;
}

std::vector<client::Json> json_lines(const std::string& text) {
  std::vector<client::Json> out;
  for (const auto& l : text_lines(text)) out.push_back(client::Json::parse(l));
  return out;
}

std::vector<std::string> split_csv(const std::string& line) {
  std::vector<std::string> out;
  std::stringstream ss(line);
  std::string f;
  while (std::getline(ss, f, ',')) out.push_back(f);
  if (!line.empty() && line.back() == ',') out.push_back("");
  return out;
}

// A [12, samples] float32 .npy of a synthetic ECG in mV.
std::string write_ecg_npy(const std::string& path, int64_t samples, float scale = 1.0f) {
  std::vector<float> v = synthetic_ecg(samples);
  for (float& x : v) x *= scale;
  EXPECT_TRUE(write_npy_f32(path, v.data(), {12, samples}).ok());
  return path;
}

// A 12-lead WFDB record (format 16, 1000 adu/mV, checksums); returns the .hea path.
std::string write_wfdb(const std::string& dir, const std::string& name, int64_t samples, int phase,
                       int fs = 500) {
  const std::vector<float> v = synthetic_ecg(samples);
  std::vector<int16_t> frames(static_cast<size_t>(12 * samples));
  std::vector<int64_t> sums(12, 0);
  for (int64_t t = 0; t < samples; ++t) {
    for (int64_t l = 0; l < 12; ++l) {
      const auto s = static_cast<int16_t>(
          std::lround(v[static_cast<size_t>(l * samples + (t + phase) % samples)] * 1000.0f));
      frames[static_cast<size_t>(t * 12 + l)] = s;  // WFDB interleaves by frame
      sums[static_cast<size_t>(l)] += s;
    }
  }
  std::ofstream(dir + "/" + name + ".dat", std::ios::binary)
      .write(reinterpret_cast<const char*>(frames.data()),
             static_cast<std::streamsize>(frames.size() * 2));
  std::ofstream hea(dir + "/" + name + ".hea");
  hea << name << " 12 " << fs << ' ' << samples << "\n";
  for (int64_t l = 0; l < 12; ++l) {
    const int64_t checksum = ((sums[static_cast<size_t>(l)] % 65536) + 65536) % 65536;
    hea << name << ".dat 16 1000/mV 16 0 " << frames[static_cast<size_t>(l)] << ' ' << checksum
        << " 0 " << kModelLeads[static_cast<size_t>(l)] << "\n";
  }
  hea << "# Dx: 426783006\n";
  return dir + "/" + name + ".hea";
}

// Heartbeats for batches on a loaded 2-core machine: a peer is declared dead only after 6 s of
// silence (the shared kHeartbeat gives up after 2 s).
const std::vector<std::string> kPatientHeartbeat = {"--heartbeat-interval", "200ms",
                                                    "--heartbeat-liveness", "30"};

// A broker and `n` tiny-model workers, all with kPatientHeartbeat.
struct Cluster {
  std::string endpoint;
  std::unique_ptr<ChildProcess> broker;
  std::vector<std::unique_ptr<ChildProcess>> workers;
  bool ready = false;

  explicit Cluster(int n) {
    for (int attempt = 0; attempt < 3 && !ready; ++attempt) {  // a free port can be taken
      endpoint = free_endpoint();
      std::vector<std::string> argv{bin("ecgq-broker"), "--bind", endpoint, "--log-level", "info"};
      argv.insert(argv.end(), kPatientHeartbeat.begin(), kPatientHeartbeat.end());
      broker = std::make_unique<ChildProcess>(argv);
      auto probe = connect(endpoint);
      ready =
          wait_until(
              [&] { return !broker->running() || probe->service_available("ecg-fm", 500ms).ok(); },
              20s) &&
          broker->running();
    }
    if (!ready) return;
    for (int i = 0; i < n; ++i) {
      std::vector<std::string> argv{bin("ecgq-worker"), "serve",
                                    "--broker",         endpoint,
                                    "--checkpoint",     tiny_checkpoint(),
                                    "--worker-id",      "w" + std::to_string(i + 1),
                                    "--threads",        "1",
                                    "--log-level",      "info"};
      argv.insert(argv.end(), kPatientHeartbeat.begin(), kPatientHeartbeat.end());
      workers.push_back(std::make_unique<ChildProcess>(argv));
    }
  }
  // What to print when the broker did not come up.
  std::string diagnostics() const { return "broker " + endpoint + ": " + broker->stderr_text(); }
};

TEST(E2eProducer, ThousandsOfRecordsEachAnsweredOnceThenResumeSendsNothing) {
  ECGQ_REQUIRE_BINARIES("ecgq-broker", "ecgq-worker", "ecgq");
  Cluster cluster(2);
  ASSERT_TRUE(cluster.ready) << cluster.diagnostics();
  TempDir dir;
  const std::string root = dir.file("records");
  constexpr int kRecords = 2000;
  std::set<std::string> expected;
  for (int d = 0; d < 4; ++d) {
    const std::string sub = root + "/part" + std::to_string(d);
    std::filesystem::create_directories(sub);
    std::ofstream(sub + "/README.md") << "generated records\n";
    std::ofstream(sub + "/SHA256SUMS") << "0 x\n";
    std::ofstream(sub + "/.hidden.npy") << "not a record\n";
  }
  for (int i = 0; i < kRecords; ++i) {
    const std::string sub = root + "/part" + std::to_string(i % 4);
    const std::string name = "rec" + std::to_string(i);
    if (i % 2 == 0) {
      expected.insert(write_ecg_npy(sub + "/" + name + ".npy", 5000, 1.0f + 0.001f * i));
    } else {
      expected.insert(write_wfdb(sub, name, 5000, i));
      if (i % 10 == 1) std::ofstream(sub + "/" + name + ".atr") << "annotations";
    }
  }
  const std::string results = dir.file("results.jsonl");
  auto run = run_command(
      {bin("ecgq"), "--broker", cluster.endpoint, "submit", "--window", "64", "-o", results, root},
      300s);
  ASSERT_EQ(run.exit_code, 0) << run.err.substr(0, 4000);
  auto lines = json_lines(read_text(results));
  ASSERT_EQ(lines.size(), static_cast<size_t>(kRecords));
  std::set<std::string> seen;
  std::set<std::string> workers;
  for (const auto& l : lines) {
    EXPECT_EQ(l["status"], "ok") << l.dump();
    EXPECT_EQ(l["n_segments"], 2) << l.dump();
    EXPECT_TRUE(seen.insert(l["path"].get<std::string>()).second) << "twice: " << l["path"];
    workers.insert(l["worker"].get<std::string>());
  }
  EXPECT_EQ(seen, expected);
  EXPECT_EQ(workers, (std::set<std::string>{"w1", "w2"}));
  // 4 READMEs, 4 checksum lists, 4 dotfiles, 1000 .dat, 200 .atr.
  EXPECT_NE(run.err.find("1212 files skipped"), std::string::npos) << run.err;
  EXPECT_NE(run.err.find("ecgq: progress 2000/2000 done, 0 failed"), std::string::npos) << run.err;

  // A crash mid-write: the last three lines lost, the one before cut in half.
  const std::vector<std::string> raw = text_lines(read_text(results));
  {
    std::ofstream cut(results, std::ios::trunc);
    for (int i = 0; i < kRecords - 4; ++i) cut << raw[static_cast<size_t>(i)] << '\n';
    cut << raw[kRecords - 4].substr(0, raw[kRecords - 4].size() / 2);
  }
  auto resumed = run_command(
      {bin("ecgq"), "--broker", cluster.endpoint, "submit", "--resume", results, root}, 120s);
  ASSERT_EQ(resumed.exit_code, 0) << resumed.err;
  EXPECT_NE(resumed.err.find("4 records: 4 ok"), std::string::npos) << resumed.err;
  lines = json_lines(read_text(results));  // throws if the cut line survived
  ASSERT_EQ(lines.size(), static_cast<size_t>(kRecords));
  seen.clear();
  for (const auto& l : lines) EXPECT_TRUE(seen.insert(l["path"].get<std::string>()).second);
  EXPECT_EQ(seen, expected);

  // Everything is done: a resume sends nothing (to a broker that is not there) and appends nothing.
  const std::string before = read_text(results);
  auto nothing = run_command({bin("ecgq"), "--broker", free_endpoint(), "--timeout", "2s", "submit",
                              "--resume", results, root},
                             60s);
  EXPECT_EQ(nothing.exit_code, 0) << nothing.err;
  EXPECT_NE(nothing.err.find("2000 records skipped as already ok"), std::string::npos)
      << nothing.err;
  EXPECT_NE(nothing.err.find("0 records: 0 ok"), std::string::npos) << nothing.err;
  EXPECT_EQ(read_text(results), before);
}

TEST(E2eProducer, CsvRowsPerRecordAndPerSegment) {
  ECGQ_REQUIRE_BINARIES("ecgq-broker", "ecgq-worker", "ecgq");
  Cluster cluster(1);
  ASSERT_TRUE(cluster.ready) << cluster.diagnostics();
  TempDir dir;
  std::vector<std::string> argv{bin("ecgq"), "--broker",  cluster.endpoint,
                                "submit",    "--ordered", "--format",
                                "csv",       "-o",        dir.file("out.csv")};
  for (int i = 0; i < 3; ++i)
    argv.push_back(write_ecg_npy(dir.file("r" + std::to_string(i) + ".npy"), 5000));
  argv.push_back(dir.file("missing.npy"));
  auto run = run_command(argv, 120s);
  EXPECT_EQ(run.exit_code, 1) << run.err;  // missing.npy failed
  EXPECT_TRUE(run.out.empty()) << run.out;
  const auto rows = text_lines(read_text(dir.file("out.csv")));
  ASSERT_EQ(rows.size(), 5u) << read_text(dir.file("out.csv"));
  const auto header = split_csv(rows[0]);
  // path, id, status, error_code, error_message, n_segments, model_sha256, precision, cached,
  // 17 labels, top_labels.
  constexpr size_t kFirstLabel = 9;
  ASSERT_EQ(header.size(), kFirstLabel + 17u + 1u) << rows[0];
  const std::vector<std::string> facts = {
      "path",       "id",           "status",    "error_code", "error_message",
      "n_segments", "model_sha256", "precision", "cached"};
  for (size_t c = 0; c < facts.size(); ++c) EXPECT_EQ(header[c], facts[c]);
  EXPECT_EQ(header.back(), "top_labels");
  for (size_t r = 1; r <= 3; ++r) {
    const auto f = split_csv(rows[r]);
    ASSERT_EQ(f.size(), header.size()) << rows[r];
    EXPECT_EQ(f[0], dir.file("r" + std::to_string(r - 1) + ".npy"));
    EXPECT_FALSE(f[1].empty());  // the job id
    EXPECT_EQ(f[2], "ok");
    EXPECT_EQ(f[3], "");
    EXPECT_EQ(f[5], "2");  // 10 s: two segments
    EXPECT_EQ(f[6].size(), 64u) << f[6];
    EXPECT_EQ(f[7], "fp32");
    std::set<std::string> top;
    for (size_t c = kFirstLabel; c < kFirstLabel + 17; ++c) {
      const double p = std::stod(f[c]);
      EXPECT_GE(p, 0.0);
      EXPECT_LE(p, 1.0);
      if (p >= 0.5) top.insert(header[c]);
    }
    std::set<std::string> listed;
    std::stringstream ss(f.back());
    for (std::string l; std::getline(ss, l, ';');) listed.insert(l);
    EXPECT_EQ(listed, top) << rows[r];
  }
  const auto bad = split_csv(rows[4]);
  ASSERT_EQ(bad.size(), header.size()) << rows[4];
  EXPECT_EQ(bad[2], "error");
  EXPECT_EQ(bad[3], "not_found");
  EXPECT_FALSE(bad[4].empty());  // the error's message

  // --per-segment: a segment column, then one row per 5 s segment after the record's row.
  auto seg = run_command({bin("ecgq"), "--broker", cluster.endpoint, "submit", "--format", "csv",
                          "--per-segment", dir.file("r0.npy")},
                         60s);
  ASSERT_EQ(seg.exit_code, 0) << seg.err;
  const auto srows = text_lines(seg.out);
  ASSERT_EQ(srows.size(), 4u) << seg.out;
  EXPECT_EQ(split_csv(srows[0])[1], "segment");
  EXPECT_EQ(split_csv(srows[1])[1], "");
  EXPECT_EQ(split_csv(srows[2])[1], "0");
  EXPECT_EQ(split_csv(srows[3])[1], "1");

  // Outputs written inside the input directory are not read back as records, even on a rerun.
  std::filesystem::create_directories(dir.file("in"));
  write_ecg_npy(dir.file("in/a.npy"), 2500);
  write_ecg_npy(dir.file("in/b.npy"), 2500);
  for (int round = 0; round < 2; ++round) {
    auto again = run_command(
        {bin("ecgq"), "--broker", cluster.endpoint, "submit", "--format", "csv", "-o",
         dir.file("in/out.csv"), "--embeddings-out", dir.file("in/emb.npy"), dir.file("in")},
        60s);
    ASSERT_EQ(again.exit_code, 0) << again.err;
    EXPECT_EQ(text_lines(read_text(dir.file("in/out.csv"))).size(), 3u);
    EXPECT_NE(again.err.find("progress 2/2 done"), std::string::npos) << again.err;
  }

  // The same in JSON: segment_probs has one row of 17 per segment.
  auto js = run_command(
      {bin("ecgq"), "--broker", cluster.endpoint, "submit", "--per-segment", dir.file("r0.npy")},
      60s);
  ASSERT_EQ(js.exit_code, 0) << js.err;
  const auto j = json_lines(js.out);
  ASSERT_EQ(j.size(), 1u);
  ASSERT_EQ(j[0]["segment_probs"].size(), 2u) << js.out;
  EXPECT_EQ(j[0]["segment_probs"][0].size(), 17u);
  EXPECT_EQ(j[0]["probs"].size(), 17u);
}

TEST(E2eProducer, EmbeddingsNpyRowsMatchTheIndexAndTheResults) {
  ECGQ_REQUIRE_BINARIES("ecgq-broker", "ecgq-worker", "ecgq");
  Cluster cluster(2);
  ASSERT_TRUE(cluster.ready) << cluster.diagnostics();
  TempDir dir;
  std::vector<std::string> argv{bin("ecgq"), "--broker",  cluster.endpoint,   "submit",
                                "--outputs", "embedding", "--embeddings-out", dir.file("emb.npy")};
  for (int i = 0; i < 5; ++i)
    argv.push_back(write_ecg_npy(dir.file("r" + std::to_string(i) + ".npy"), 2500 * (i + 1)));
  argv.push_back(dir.file("missing.npy"));
  auto run = run_command(argv, 120s);
  EXPECT_EQ(run.exit_code, 1) << run.err;
  std::map<std::string, client::Json> by_path;
  for (const auto& l : json_lines(run.out)) by_path[l["path"].get<std::string>()] = l;
  ASSERT_EQ(by_path.size(), 6u);

  auto npy = read_npy(dir.file("emb.npy"));
  ASSERT_TRUE(npy.ok()) << npy.status().to_string();
  EXPECT_EQ(npy->dtype, "f32");
  ASSERT_EQ(npy->shape.size(), 2u);
  EXPECT_EQ(npy->shape[0], 5);
  const int64_t e = npy->shape[1];
  EXPECT_GT(e, 0);
  EXPECT_EQ(std::filesystem::file_size(dir.file("emb.npy")),
            static_cast<uintmax_t>(128 + 5 * e * 4));
  const std::vector<float> rows = npy->to_float();
  const auto index = json_lines(read_text(dir.file("emb.npy.index.jsonl")));
  ASSERT_EQ(index.size(), 5u);
  std::set<std::string> indexed;
  for (size_t r = 0; r < index.size(); ++r) {
    EXPECT_EQ(index[r]["row"], static_cast<int64_t>(r));
    const std::string path = index[r]["path"].get<std::string>();
    indexed.insert(path);
    const client::Json& line = by_path[path];
    EXPECT_EQ(index[r]["id"], line["id"]);
    ASSERT_EQ(line["embedding"].size(), static_cast<size_t>(e));
    for (int64_t c = 0; c < e; ++c) {
      const double want = line["embedding"][static_cast<size_t>(c)].get<double>();
      EXPECT_NEAR(rows[static_cast<size_t>(static_cast<int64_t>(r) * e + c)], want,
                  1e-6 * (1 + std::abs(want)));
    }
  }
  EXPECT_EQ(indexed.count(dir.file("missing.npy")), 0u);
  EXPECT_EQ(indexed.size(), 5u);
}

TEST(E2eProducer, FailFastCancelsQueuedJobsAndExitsOne) {
  ECGQ_REQUIRE_BINARIES("ecgq-broker", "ecgq");
  Broker broker;  // no worker: jobs stay queued until cancelled
  ASSERT_TRUE(broker.ready) << broker.diagnostics();
  TempDir dir;
  const std::string ok = write_ecg_npy(dir.file("ok.npy"), 2500);
  std::ofstream(dir.file("bad.npy")) << "not numpy";
  std::vector<std::string> argv{bin("ecgq"), "--broker", broker.endpoint, "submit", "--fail-fast"};
  for (int i = 0; i < 4; ++i) argv.push_back(ok);
  argv.push_back(dir.file("bad.npy"));
  for (int i = 0; i < 4; ++i) argv.push_back(ok);
  auto run = run_command(argv, 60s);
  EXPECT_EQ(run.exit_code, 1) << run.err;
  EXPECT_NE(run.err.find("--fail-fast: stopped at the first failure: " + dir.file("bad.npy")),
            std::string::npos)
      << run.err;
  EXPECT_NE(run.err.find("4 queued jobs cancelled"), std::string::npos) << run.err;
  auto c = connect(broker.endpoint);
  EXPECT_LE(json_int(status_json(*c), {"services", "ecg-fm", "queued"}), 0);
}

TEST(E2eProducer, ThirtyMinutesAt1000HzInt16FitsTheBrokersMessageLimit) {
  ECGQ_REQUIRE_BINARIES("ecgq-broker", "ecgq-worker", "ecgq");
  // 1800 s * 1000 Hz * 12 leads * 2 bytes = 43.2 MB on the wire, under the 128 MiB default.
  Cluster cluster(1);
  ASSERT_TRUE(cluster.ready) << cluster.diagnostics();
  TempDir dir;
  const std::string hea = write_wfdb(dir.path(), "long", 1800 * 1000, 0, 1000);
  auto run = run_command({bin("ecgq"), "--broker", cluster.endpoint, "submit", hea}, 180s);
  ASSERT_EQ(run.exit_code, 0) << run.err << run.out.substr(0, 2000);
  const auto lines = json_lines(run.out);
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0]["status"], "ok") << lines[0].dump();
  EXPECT_EQ(lines[0]["n_segments"], 360);
}

TEST(E2eProducer, TooLongRecordsAreRefusedLocallyAndUsageErrorsExitTwo) {
  ECGQ_REQUIRE_BINARIES("ecgq");
  TempDir dir;
  const std::string npy = write_ecg_npy(dir.file("long.npy"), 500 * 20);
  // Refused before sending: no broker is needed to get the answer.
  auto run = run_command({bin("ecgq"), "--broker", free_endpoint(), "--timeout", "2s", "submit",
                          "--max-record-seconds", "10", npy},
                         30s);
  EXPECT_EQ(run.exit_code, 1) << run.err;
  const auto lines = json_lines(run.out);
  ASSERT_EQ(lines.size(), 1u) << run.out;
  EXPECT_EQ(lines[0]["status"], "error");
  EXPECT_EQ(lines[0]["error"]["code"], "too_long");
  EXPECT_NE(lines[0]["error"]["message"].get<std::string>().find("20.0 s"), std::string::npos);

  for (std::vector<std::string> bad : {
           std::vector<std::string>{"submit", "--format", "xml", npy},
           std::vector<std::string>{"submit", "--format", "csv", "--resume", "r.jsonl", npy},
           std::vector<std::string>{"submit", "--resume", "r.jsonl", "-o", "other.jsonl", npy},
           std::vector<std::string>{"submit", "--max-record-seconds", "0", npy},
       }) {
    bad.insert(bad.begin(), bin("ecgq"));
    auto r = run_command(bad, 10s);
    EXPECT_EQ(r.exit_code, 2) << bad[2] << ' ' << r.err;
  }
}

}  // namespace
}  // namespace ecgq::test
