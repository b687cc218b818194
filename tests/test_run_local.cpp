// scripts/run-local end to end: the script as a real process with the build's binaries
// (ECGQ_BIN_DIR, so it never installs packages or rebuilds), a real broker, two real workers and
// the bundled records; the hub is the test-side emulator or a closed port.
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "common/sha256.hpp"
#include "tests/support/hub_emulator.hpp"
#include "tests/support/process.hpp"

namespace ecgq::test {
namespace {

using Json = nlohmann::json;
using namespace std::chrono_literals;

constexpr char kRepo[] = "wanglab/ecg-fm";
constexpr char kFile[] = "mimic_iv_ecg_finetuned.pt";
constexpr char kReference[] = "hf://wanglab/ecg-fm/mimic_iv_ecg_finetuned.pt";
constexpr char kCommit[] = "0123456789abcdef0123456789abcdef01234567";
// Long enough for a loaded machine; the script bounds its own waits well below this.
constexpr auto kScriptTimeout = 300s;

struct ScriptRun {
  int exit_code = -1;
  std::string out;
  std::string err;
  std::vector<Json> results;  // the JSON lines of stdout, in order
};

std::string read_all(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// Runs scripts/run-local with `args` and `env` (plus ECGQ_BIN_DIR) to completion.
ScriptRun run_local(const std::vector<std::string>& args, std::map<std::string, std::string> env) {
  std::vector<std::string> argv = {"/bin/bash", source("scripts/run-local")};
  argv.insert(argv.end(), args.begin(), args.end());
  env["ECGQ_BIN_DIR"] = ECGQ_BIN_DIR;
  ChildProcess script(argv, env);
  ScriptRun run;
  run.exit_code = script.wait(kScriptTimeout);
  if (run.exit_code == -1) {
    // The script and its broker and workers share the process group ChildProcess created.
    ::kill(-script.pid(), SIGKILL);
    script.wait(10s);
  }
  run.out = script.stdout_text();
  run.err = script.stderr_text();
  std::istringstream lines(run.out);
  for (std::string line; std::getline(lines, line);) {
    if (line.empty() || line[0] != '{') continue;
    Json j = Json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (!j.is_discarded()) run.results.push_back(std::move(j));
  }
  return run;
}

// The .hea records of data/ecg, the ones the script submits by default.
std::set<std::string> sample_records() {
  std::set<std::string> records;
  for (const auto& e : std::filesystem::directory_iterator(source("data/ecg")))
    if (e.path().extension() == ".hea") records.insert(e.path().filename().string());
  return records;
}

std::string describe(const ScriptRun& run) {
  return "exit " + std::to_string(run.exit_code) + "\n--- stdout ---\n" + run.out +
         "\n--- stderr ---\n" + run.err;
}

// Checks the shape every successful run prints: the batch (one ok line per record), then a job
// that wakes a sleeping worker (cold start), one that finds it warm, and a record of the batch
// answered from the broker's result cache.
void expect_batch_then_wake(const ScriptRun& run) {
  const std::set<std::string> records = sample_records();
  ASSERT_EQ(records.size(), 4u);
  ASSERT_EQ(run.results.size(), records.size() + 3) << describe(run);
  std::set<std::string> seen;
  for (size_t i = 0; i < records.size(); ++i) {
    const Json& r = run.results[i];
    EXPECT_EQ(r.value("status", ""), "ok") << r.dump();
    seen.insert(std::filesystem::path(r.value("path", "")).filename().string());
  }
  EXPECT_EQ(seen, records);
  const Json& wake = run.results[records.size()];
  const Json& warm = run.results[records.size() + 1];
  EXPECT_EQ(wake.value("status", ""), "ok") << wake.dump();
  EXPECT_EQ(wake.value("cold_start", false), true) << wake.dump();
  EXPECT_GT(wake["timings"].value("load_ms", 0.0), 0.0) << wake.dump();
  EXPECT_EQ(warm.value("status", ""), "ok") << warm.dump();
  EXPECT_EQ(warm.value("cold_start", true), false) << warm.dump();
  EXPECT_EQ(warm.value("cached", true), false) << warm.dump();
  const Json& cached = run.results[records.size() + 2];
  EXPECT_EQ(cached.value("status", ""), "ok") << cached.dump();
  EXPECT_EQ(cached.value("cached", false), true) << cached.dump();
  for (size_t i = 0; i < records.size(); ++i) {
    if (run.results[i].value("path", "") == cached.value("path", "?")) {
      EXPECT_EQ(cached["probs"], run.results[i]["probs"]) << cached.dump();
    }
  }
  // The status table printed once every worker had unloaded its model.
  EXPECT_NE(run.out.find("state asleep"), std::string::npos) << describe(run);
}

TEST(RunLocal, DemoRunsTheBatchThenSleepsAndWakes) {
  ScriptRun run = run_local({"--demo", "--idle-timeout", "4s"}, {});
  ASSERT_EQ(run.exit_code, 0) << describe(run);
  expect_batch_then_wake(run);
  for (const Json& r : run.results) {
    EXPECT_EQ(r["model"].value("name", ""), source("data/models/demo-random-weights-tiny.pt"));
  }
  EXPECT_NE(run.err.find("RANDOM WEIGHTS"), std::string::npos) << run.err;
}

TEST(RunLocal, OfficialCheckpointIsFetchedOnceFromTheHub) {
  const std::string bytes = read_all(source("data/models/demo-random-weights-tiny.pt"));
  ASSERT_FALSE(bytes.empty());
  HubEmulator hub;
  hub.add_file(kRepo, kFile, bytes, /*lfs=*/true, kCommit);
  TempDir cache;
  ScriptRun run = run_local({"--idle-timeout", "4s"},
                            {{"HF_ENDPOINT", hub.endpoint()}, {"HF_HUB_CACHE", cache.path()}});
  ASSERT_EQ(run.exit_code, 0) << describe(run);
  expect_batch_then_wake(run);
  const std::string digest = sha256_hex(bytes);
  for (const Json& r : run.results) {
    EXPECT_EQ(r["model"].value("name", ""), kReference) << r.dump();
    EXPECT_EQ(r["model"].value("sha256", ""), digest) << r.dump();
  }
  // run-local's fetch downloads; both workers then resolve the reference from the cache.
  EXPECT_EQ(hub.content_gets(kRepo, kFile), 1);
  EXPECT_EQ(run.err.find("DEMO MODE"), std::string::npos);
}

TEST(RunLocal, UnreachableHubWithEmptyCacheStopsAndPointsAtDemo) {
  TempDir cache;
  const std::string endpoint = "http://127.0.0.1:" + std::to_string(free_port());
  ScriptRun run = run_local({}, {{"HF_ENDPOINT", endpoint}, {"HF_HUB_CACHE", cache.path()}});
  EXPECT_NE(run.exit_code, 0) << describe(run);
  EXPECT_NE(run.exit_code, -1) << "run-local did not stop by itself\n" << describe(run);
  EXPECT_NE(run.err.find("--demo"), std::string::npos) << describe(run);
  EXPECT_TRUE(run.results.empty()) << describe(run);
}

}  // namespace
}  // namespace ecgq::test
