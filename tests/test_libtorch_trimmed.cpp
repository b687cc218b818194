// With ECGQ_TRIM_LIBTORCH (cmake/TrimLibTorch.cmake), the programs linking LibTorch load the
// build's trimmed copy of libtorch_cpu, and none of the libraries it no longer links; the worker
// binds every symbol at start and gives the same bytes as with the system library.
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "tests/support/process.hpp"
#include "tests/test_worker_support.hpp"

using namespace ecgq;
using namespace ecgq::test;
using std::chrono::milliseconds;
namespace fs = std::filesystem;

namespace {

constexpr milliseconds kWait{60000};

// The files mapped into process `pid` ("self" for this one), canonical paths.
std::set<std::string> mapped_files(const std::string& pid) {
  std::ifstream in("/proc/" + pid + "/maps");
  std::set<std::string> files;
  std::string line;
  while (std::getline(in, line)) {
    auto slash = line.find('/');
    if (slash == std::string::npos) continue;
    std::error_code ec;
    auto p = fs::weakly_canonical(line.substr(slash), ec);
    files.insert(ec ? line.substr(slash) : p.string());
  }
  return files;
}

std::string trimmed_copy() {
  return fs::weakly_canonical(ECGQ_TRIMMED_LIBTORCH).string();
}

// Every mapped libtorch_cpu, and every mapped library of the families the copy dropped.
void expect_trimmed(const std::set<std::string>& files, const std::string& who) {
  int torch_cpu = 0;
  std::string dropped_mapped;
  for (const auto& f : files) {
    auto name = fs::path(f).filename().string();
    if (name.rfind("libtorch_cpu.so", 0) == 0) {
      ++torch_cpu;
      EXPECT_EQ(f, trimmed_copy()) << who << " maps the system libtorch_cpu, not the build's copy";
    }
    for (const char* dropped :
         {"libopencv_", "libavcodec.so", "libQt5", "libgdal.so", "liblmdb.so", "libleveldb.so"})
      if (name.rfind(dropped, 0) == 0) dropped_mapped += " " + f;
  }
  EXPECT_EQ(torch_cpu, 1) << who << " maps no libtorch_cpu";
  EXPECT_TRUE(dropped_mapped.empty()) << who << " maps" << dropped_mapped;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

}  // namespace

TEST(TrimmedLibTorch, ATestLinkingLibTorchMapsTheCopy) {
  expect_trimmed(mapped_files("self"), "this test");
}

TEST(TrimmedLibTorch, TheServingWorkerMapsTheCopy) {
  auto endpoint = free_endpoint();
  FakeBroker broker(endpoint);
  ChildProcess worker({bin("ecgq-worker"), "serve", "--broker", endpoint, "--checkpoint",
                       data_path("ecgfm/tiny_finetuned.pt"), "--worker-id", "trimmed-worker",
                       "--threads", "1"});
  auto ready = broker.next(kWait);
  ASSERT_TRUE(ready.has_value()) << "no READY; stderr:\n" << worker.stderr_text();
  expect_trimmed(mapped_files(std::to_string(worker.pid())), "ecgq-worker serve");
}

// LD_BIND_NOW binds every relocation of every loaded library at start, lazy calls included: a
// symbol that only a dropped library defined would fail here, before any code runs. The run
// then gives the bytes the system library gives (LD_LIBRARY_PATH is searched before RUNPATH).
TEST(TrimmedLibTorch, TheWorkerBindsEverySymbolAndMatchesTheSystemLibrary) {
  TempDir dir;
  auto infer = [&](const std::string& out, std::map<std::string, std::string> env) {
    auto r = run_command(
        {bin("ecgq-worker"), "infer", "--checkpoint", data_path("ecgfm/tiny_finetuned.pt"),
         "--input", data_path("ecgfm/input.npy"), "--out", dir.file(out), "--threads", "1"},
        kWait, env);
    EXPECT_EQ(r.exit_code, 0) << r.err;
  };
  infer("trimmed", {{"LD_BIND_NOW", "1"}});
  infer("system", {{"LD_LIBRARY_PATH", ECGQ_SYSTEM_LIBTORCH_DIR}});
  for (const char* npy : {"probs.npy", "logits.npy", "embedding.npy"}) {
    auto a = read_file(dir.file("trimmed") + "/" + npy);
    EXPECT_FALSE(a.empty()) << npy;
    EXPECT_TRUE(a == read_file(dir.file("system") + "/" + npy)) << npy << " differs";
  }
  // ...and that run did load the system library (ldd resolves as the loader does).
  auto r = run_command({"/usr/bin/ldd", bin("ecgq-worker")}, kWait,
                       {{"LD_LIBRARY_PATH", ECGQ_SYSTEM_LIBTORCH_DIR}});
  auto at = r.out.find("libtorch_cpu");
  ASSERT_NE(at, std::string::npos) << r.out << r.err;
  auto line = r.out.substr(at, r.out.find('\n', at) - at);
  EXPECT_NE(line.find(ECGQ_SYSTEM_LIBTORCH_DIR), std::string::npos) << line;
}
