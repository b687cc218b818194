// Hub loading against the in-process hub emulator: cache layout shared with huggingface_hub,
// resumable verified downloads, one download across processes, offline mode and clear errors.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include "hub/http_download.hpp"
#include "hub/hub_cache.hpp"
#include "hub/hub_reference.hpp"
#include "hub/hub_settings.hpp"
#include "common/sha256.hpp"
#include "tests/support/hub_emulator.hpp"
#include "tests/support/process.hpp"
#include "worker/fetch_command.hpp"

namespace fs = std::filesystem;
using namespace ecgq;
using ecgq::test::HubEmulator;
using ecgq::test::TempDir;

namespace {

// Started with ECGQ_TEST_FETCH_HELPER=1 this binary is `ecgq-worker fetch` (for the
// multi-process test, until a test can rely on ecgq-worker dispatching `fetch` itself).
struct FetchHelper {
  FetchHelper() {
    if (!std::getenv("ECGQ_TEST_FETCH_HELPER")) return;
    std::ifstream in("/proc/self/cmdline", std::ios::binary);
    std::vector<std::string> args;
    std::string arg;
    while (std::getline(in, arg, '\0')) args.push_back(arg);
    std::vector<char*> argv;
    for (size_t i = 1; i < args.size(); ++i) argv.push_back(args[i].data());
    argv.push_back(nullptr);
    int rc = fetch_command(static_cast<int>(argv.size()) - 1, argv.data());
    std::fflush(nullptr);
    std::_Exit(rc);
  }
} fetch_helper;

const char* kRepo = "wanglab/ecg-fm";
const char* kFile = "mimic_iv_ecg_finetuned.pt";
const std::string kCommit = "0123456789abcdef0123456789abcdef01234567";
const std::string kCommit2 = "89abcdef0123456789abcdef0123456789abcdef";

std::string random_bytes(size_t n, unsigned seed) {
  std::mt19937 gen(seed);
  std::string s(n, '\0');
  for (auto& c : s) c = static_cast<char>(gen() & 0xff);
  return s;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::vector<std::string> files_under(const std::string& dir) {
  std::vector<std::string> out;
  std::error_code ec;
  if (!fs::exists(dir, ec)) return out;
  for (auto& e : fs::recursive_directory_iterator(dir)) {
    if (!e.is_directory()) out.push_back(e.path().string());
  }
  return out;
}

class HubCacheTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // The developer's own hub settings must not leak into the tests.
    ::unsetenv("HF_TOKEN");
    ::unsetenv("HUGGING_FACE_HUB_TOKEN");
    ::unsetenv("HF_HUB_OFFLINE");
    ::unsetenv("HF_ENDPOINT");
    ::unsetenv("HF_HUB_CACHE");
    ::setenv("HF_HOME", home_.path().c_str(), 1);
    content_ = random_bytes(3 << 20, 7);
    hub_.add_file(kRepo, kFile, content_, /*lfs=*/true, kCommit);
    options_.cache_dir = cache_.path();
    options_.endpoint = hub_.endpoint();
    options_.stall_timeout = Millis(1000);
    options_.progress_interval = Millis(200);
  }
  std::string ref(const std::string& suffix = "") const {
    return std::string("hf://") + kRepo + "/" + kFile + suffix;
  }
  std::string storage() const { return cache_.path() + "/models--wanglab--ecg-fm"; }

  TempDir home_;
  TempDir cache_;
  HubEmulator hub_;
  std::string content_;
  HubOptions options_;
};

}  // namespace

TEST(Sha, KnownAnswers) {
  EXPECT_EQ(sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(sha256_hex(std::string(1000000, 'a')),
            "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
  EXPECT_EQ(git_blob_sha1_hex("hello\n"), "ce013625030ba8dba906f756967f9e9ca394464a");
  // Streaming in odd pieces gives the one-shot digest.
  std::string data = random_bytes(100003, 3);
  Sha256 h;
  for (size_t i = 0; i < data.size(); i += 61)
    h.update(data.data() + i, std::min<size_t>(61, data.size() - i));
  EXPECT_EQ(h.hex_digest(), sha256_hex(data));
  TempDir dir;
  std::ofstream(dir.file("f"), std::ios::binary) << data;
  auto file = hash_file(dir.file("f"), true);
  ASSERT_TRUE(file.ok());
  EXPECT_EQ(file->sha256, sha256_hex(data));
  EXPECT_EQ(file->git_sha1, git_blob_sha1_hex(data));
  EXPECT_EQ(sha256_file(dir.file("missing")).status().code(), "io_error");
}

TEST(HubReference, ParsesBothSpellingsAndRejectsBadOnes) {
  auto a = parse_hub_reference("hf://wanglab/ecg-fm/mimic_iv_ecg_finetuned.pt");
  ASSERT_TRUE(a.ok()) << a.status().to_string();
  EXPECT_EQ(a->owner, "wanglab");
  EXPECT_EQ(a->repo, "ecg-fm");
  EXPECT_EQ(a->path, "mimic_iv_ecg_finetuned.pt");
  EXPECT_EQ(a->revision, "main");
  auto b = parse_hub_reference("hf://o/r/dir/sub/f.pt@refs/pr/1");
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->path, "dir/sub/f.pt");
  EXPECT_EQ(b->revision, "refs/pr/1");
  EXPECT_EQ(hub_resolve_path(*b), "/o/r/resolve/refs%2Fpr%2F1/dir/sub/f.pt");
  auto c = parse_hub_reference("hf://o/r@v1.0/f.pt");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->revision, "v1.0");
  EXPECT_EQ(c->path, "f.pt");
  for (const char* bad : {"hf://o", "hf://o/r", "hf://o/r/", "hf://o/r/../x", "hf://o/r/f@",
                          "hf://o/r@a/f@b", "hf://o p/r/f"}) {
    auto e = parse_hub_reference(bad);
    ASSERT_FALSE(e.ok()) << bad;
    EXPECT_EQ(e.status().code(), "bad_reference") << bad;
    EXPECT_NE(e.status().message().find(bad), std::string::npos);
  }
  EXPECT_TRUE(is_commit_hash(kCommit));
  EXPECT_FALSE(is_commit_hash("main"));
}

TEST(HubErrors, WriteErrorsMapToDiskFullAndReadOnly) {
  EXPECT_EQ(file_error(ENOSPC, "writing", "/c/x").code(), "disk_full");
  EXPECT_EQ(file_error(EROFS, "writing", "/c/x").code(), "cache_readonly");
  EXPECT_EQ(file_error(EACCES, "writing", "/c/x").code(), "cache_readonly");
  EXPECT_EQ(file_error(EIO, "writing", "/c/x").code(), "io_error");
}

TEST(LocalCheckpoint, ResolvesToItselfWithItsSha256) {
  TempDir dir;
  std::string path = dir.file("model.pt");
  std::ofstream(path, std::ios::binary) << "checkpoint bytes";
  auto r = resolve_checkpoint(path, HubOptions{});
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(r->path, path);
  EXPECT_EQ(r->sha256, sha256_hex("checkpoint bytes"));
  EXPECT_FALSE(r->downloaded);
  auto missing = resolve_checkpoint(dir.file("absent.pt"), HubOptions{});
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), "checkpoint_not_found");
  EXPECT_NE(missing.status().message().find("absent.pt"), std::string::npos);
}

TEST_F(HubCacheTest, FreshDownloadThenCacheWithoutGets) {
  auto r = resolve_checkpoint(ref(), options_);
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  std::string sha = sha256_hex(content_);
  EXPECT_TRUE(r->downloaded);
  EXPECT_EQ(r->sha256, sha);
  EXPECT_EQ(r->commit, kCommit);
  EXPECT_EQ(r->size, content_.size());
  EXPECT_GE(r->download_ms, 0);
  // The huggingface_hub layout: relative symlink into blobs/, refs/main holds the commit.
  EXPECT_EQ(r->path, storage() + "/snapshots/" + kCommit + "/" + kFile);
  EXPECT_EQ(fs::read_symlink(r->path).string(), "../../blobs/" + sha);
  EXPECT_EQ(read_file(storage() + "/refs/main"), kCommit);
  EXPECT_EQ(read_file(r->path), content_);
  EXPECT_TRUE(fs::exists(cache_.path() + "/.locks/models--wanglab--ecg-fm/" + sha + ".lock"));
  EXPECT_FALSE(fs::exists(storage() + "/blobs/" + sha + ".incomplete"));
  EXPECT_EQ(hub_.content_gets(kRepo, kFile), 1);
  EXPECT_EQ(hub_.heads(kRepo, kFile), 1);

  // A branch is re-checked with one HEAD and no GET.
  auto again = resolve_checkpoint(ref(), options_);
  ASSERT_TRUE(again.ok()) << again.status().to_string();
  EXPECT_FALSE(again->downloaded);
  EXPECT_EQ(again->path, r->path);
  EXPECT_EQ(again->sha256, sha);
  EXPECT_EQ(again->download_ms, 0);
  EXPECT_EQ(hub_.content_gets(kRepo, kFile), 1);
  EXPECT_EQ(hub_.heads(kRepo, kFile), 2);

  // Without recheck, or with a commit revision, the network is not touched at all.
  HubOptions no_recheck = options_;
  no_recheck.recheck = false;
  ASSERT_TRUE(resolve_checkpoint(ref(), no_recheck).ok());
  auto pinned = resolve_checkpoint(ref("@" + kCommit), options_);
  ASSERT_TRUE(pinned.ok()) << pinned.status().to_string();
  EXPECT_EQ(pinned->sha256, sha);
  EXPECT_EQ(hub_.heads(kRepo, kFile), 2);
  EXPECT_EQ(hub_.content_gets(kRepo, kFile), 1);
}

TEST_F(HubCacheTest, NewCommitOfSameBytesOnlyRelinks) {
  ASSERT_TRUE(resolve_checkpoint(ref(), options_).ok());
  hub_.add_file(kRepo, kFile, content_, true, kCommit2);  // main moves, the file is unchanged
  auto r = resolve_checkpoint(ref(), options_);
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(r->commit, kCommit2);
  EXPECT_EQ(read_file(storage() + "/refs/main"), kCommit2);
  EXPECT_EQ(hub_.content_gets(kRepo, kFile), 1);
}

TEST_F(HubCacheTest, RevisionWithSlashesIsEncodedAndStoredAsNestedRef) {
  std::string pr = random_bytes(1000, 11);
  hub_.add_file(kRepo, "sub/dir/pr.pt", pr, true, kCommit2, {"refs/pr/1"});
  auto r = resolve_checkpoint("hf://wanglab/ecg-fm/sub/dir/pr.pt@refs/pr/1", options_);
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(read_file(storage() + "/refs/refs/pr/1"), kCommit2);
  EXPECT_EQ(fs::read_symlink(r->path).string(), "../../../../blobs/" + sha256_hex(pr));
  EXPECT_EQ(read_file(r->path), pr);
}

TEST_F(HubCacheTest, NonLfsFileIsVerifiedWithGitBlobSha1) {
  std::string config = "{\"model\": \"ecg-fm\"}\n";
  hub_.add_file(kRepo, "config/config.json", config, /*lfs=*/false, kCommit);
  auto r = resolve_checkpoint("hf://wanglab/ecg-fm/config/config.json", options_);
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(r->sha256, sha256_hex(config));
  EXPECT_EQ(fs::read_symlink(r->path).string(), "../../../blobs/" + git_blob_sha1_hex(config));
  EXPECT_EQ(read_file(r->path), config);
}

TEST_F(HubCacheTest, CutConnectionResumesWithRangeAndVerifies) {
  options_.download_attempts = 1;
  hub_.cut_next_download(0.5);
  auto cut = resolve_checkpoint(ref(), options_);
  ASSERT_FALSE(cut.ok());
  EXPECT_EQ(cut.status().code(), "hub_interrupted") << cut.status().to_string();
  std::string incomplete = storage() + "/blobs/" + sha256_hex(content_) + ".incomplete";
  ASSERT_TRUE(fs::exists(incomplete));
  uint64_t half = fs::file_size(incomplete);
  EXPECT_EQ(half, content_.size() / 2);
  EXPECT_FALSE(fs::exists(storage() + "/snapshots"));

  auto r = resolve_checkpoint(ref(), options_);
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(r->sha256, sha256_hex(content_));
  EXPECT_EQ(read_file(r->path), content_);
  auto ranges = hub_.ranges(kRepo, kFile);
  ASSERT_EQ(ranges.size(), 2u);
  EXPECT_EQ(ranges[0], "");
  EXPECT_EQ(ranges[1], "bytes=" + std::to_string(half) + "-");
  EXPECT_FALSE(fs::exists(incomplete));
}

TEST_F(HubCacheTest, CutConnectionIsResumedWithinOneResolve) {
  hub_.cut_next_download(0.3);
  auto r = resolve_checkpoint(ref(), options_);
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(read_file(r->path), content_);
  auto ranges = hub_.ranges(kRepo, kFile);
  ASSERT_EQ(ranges.size(), 2u);
  EXPECT_NE(ranges[1].find("bytes="), std::string::npos);
}

TEST_F(HubCacheTest, CorruptedBytesAreNeverCached) {
  hub_.set_corrupt(true);
  auto r = resolve_checkpoint(ref(), options_);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), "hub_checksum_mismatch");
  std::string sha = sha256_hex(content_);
  std::string corrupted = content_;
  corrupted[corrupted.size() / 2] ^= 0x5a;
  EXPECT_NE(r.status().message().find("expected sha256 " + sha), std::string::npos)
      << r.status().message();
  EXPECT_NE(r.status().message().find("got " + sha256_hex(corrupted)), std::string::npos);
  EXPECT_TRUE(files_under(storage() + "/snapshots").empty());
  EXPECT_TRUE(files_under(storage() + "/blobs").empty());
  EXPECT_FALSE(fs::exists(storage() + "/refs/main"));

  hub_.set_corrupt(false);
  auto fixed = resolve_checkpoint(ref(), options_);
  ASSERT_TRUE(fixed.ok()) << fixed.status().to_string();
  EXPECT_EQ(fixed->sha256, sha);
}

TEST_F(HubCacheTest, TokenIsRequiredAndNotForwardedToAnotherHost) {
  hub_.require_token("hf_secret");
  hub_.set_cdn_host("localhost");
  auto denied = resolve_checkpoint(ref(), options_);
  ASSERT_FALSE(denied.ok());
  EXPECT_EQ(denied.status().code(), "hub_auth");
  EXPECT_NE(denied.status().message().find("HF_TOKEN"), std::string::npos);
  EXPECT_EQ(hub_.content_gets(kRepo, kFile), 0);

  ::setenv("HF_TOKEN", "hf_secret", 1);
  auto ok = resolve_checkpoint(ref(), options_);
  ::unsetenv("HF_TOKEN");
  ASSERT_TRUE(ok.ok()) << ok.status().to_string();
  EXPECT_EQ(read_file(ok->path), content_);
  EXPECT_FALSE(hub_.cdn_saw_authorization());

  options_.token = "hf_wrong";
  options_.recheck = true;
  auto wrong = resolve_checkpoint(ref(), options_);
  ASSERT_FALSE(wrong.ok());
  EXPECT_EQ(wrong.status().code(), "hub_auth");
  EXPECT_NE(wrong.status().message().find("not accepted"), std::string::npos);
}

TEST_F(HubCacheTest, NotFoundNamesRepositoryFileAndRevision) {
  struct Case {
    std::string reference, expect;
  } cases[] = {
      {"hf://wanglab/no-such-repo/" + std::string(kFile), "RepoNotFound"},
      {"hf://wanglab/ecg-fm/absent.pt", "EntryNotFound"},
      {"hf://wanglab/ecg-fm/" + std::string(kFile) + "@v9", "RevisionNotFound"},
  };
  for (const auto& c : cases) {
    auto r = resolve_checkpoint(c.reference, options_);
    ASSERT_FALSE(r.ok()) << c.reference;
    EXPECT_EQ(r.status().code(), "hub_not_found") << r.status().to_string();
    auto parsed = parse_hub_reference(c.reference);
    const std::string msg = r.status().message();
    EXPECT_NE(msg.find(parsed->repo_id()), std::string::npos) << msg;
    EXPECT_NE(msg.find(parsed->path), std::string::npos) << msg;
    EXPECT_NE(msg.find("revision " + parsed->revision), std::string::npos) << msg;
    EXPECT_NE(msg.find(c.expect), std::string::npos) << msg;
  }
}

TEST_F(HubCacheTest, StallingServerTimesOut) {
  hub_.set_stall(true);
  options_.download_attempts = 1;
  auto r = resolve_checkpoint(ref(), options_);
  hub_.set_stall(false);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), "hub_timeout") << r.status().to_string();
  EXPECT_NE(r.status().message().find("stall_timeout"), std::string::npos);
  EXPECT_TRUE(files_under(storage() + "/snapshots").empty());
}

TEST_F(HubCacheTest, UnreachableHubFallsBackToCacheOrFails) {
  HubOptions down = options_;
  down.endpoint = "http://127.0.0.1:" + std::to_string(ecgq::test::free_port());
  auto none = resolve_checkpoint(ref(), down);
  ASSERT_FALSE(none.ok());
  EXPECT_EQ(none.status().code(), "hub_unreachable") << none.status().to_string();
  EXPECT_NE(none.status().message().find("HF_HUB_OFFLINE"), std::string::npos);

  ASSERT_TRUE(resolve_checkpoint(ref(), options_).ok());
  auto cached = resolve_checkpoint(ref(), down);
  ASSERT_TRUE(cached.ok()) << cached.status().to_string();
  EXPECT_EQ(cached->sha256, sha256_hex(content_));
}

TEST_F(HubCacheTest, OfflineUsesOnlyTheCache) {
  options_.offline = true;
  auto missing = resolve_checkpoint(ref(), options_);
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), "hub_offline");
  EXPECT_NE(missing.status().message().find("HF_HUB_OFFLINE"), std::string::npos);
  EXPECT_EQ(hub_.heads(kRepo, kFile), 0);

  options_.offline = false;
  ASSERT_TRUE(resolve_checkpoint(ref(), options_).ok());
  int heads = hub_.heads(kRepo, kFile);
  options_.offline = false;
  ::setenv("HF_HUB_OFFLINE", "1", 1);
  auto cached = resolve_checkpoint(ref(), options_);
  ::unsetenv("HF_HUB_OFFLINE");
  ASSERT_TRUE(cached.ok()) << cached.status().to_string();
  EXPECT_EQ(cached->sha256, sha256_hex(content_));
  EXPECT_EQ(hub_.heads(kRepo, kFile), heads);
  EXPECT_EQ(hub_.content_gets(kRepo, kFile), 1);
}

TEST_F(HubCacheTest, CacheMadeInHuggingfaceHubLayoutIsFound) {
  // What `huggingface-cli download` leaves behind, written by hand.
  std::string bytes = "weights made by python";
  std::string sha = sha256_hex(bytes);
  std::string repo = cache_.path() + "/models--someone--model";
  fs::create_directories(repo + "/blobs");
  fs::create_directories(repo + "/refs");
  fs::create_directories(repo + "/snapshots/" + kCommit2 + "/ckpt");
  std::ofstream(repo + "/blobs/" + sha, std::ios::binary) << bytes;
  std::ofstream(repo + "/refs/main") << kCommit2;
  fs::create_symlink("../../../blobs/" + sha, repo + "/snapshots/" + kCommit2 + "/ckpt/w.pt");

  options_.offline = true;
  auto r = resolve_checkpoint("hf://someone/model/ckpt/w.pt", options_);
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(r->sha256, sha);
  EXPECT_EQ(r->commit, kCommit2);
  EXPECT_EQ(read_file(r->path), bytes);

  // A pinned commit needs no network even when online and the hub is unreachable.
  HubOptions online = options_;
  online.offline = false;
  online.endpoint = "http://127.0.0.1:" + std::to_string(ecgq::test::free_port());
  auto pinned = resolve_checkpoint("hf://someone/model/ckpt/w.pt@" + kCommit2, online);
  ASSERT_TRUE(pinned.ok()) << pinned.status().to_string();
  EXPECT_EQ(pinned->path, r->path);
}

TEST_F(HubCacheTest, ReadOnlyCacheIsReported) {
  std::string dir = "/sys/ecgq-hub-cache-probe";
  if (::mkdir(dir.c_str(), 0755) == 0 || (errno != EROFS && errno != EPERM && errno != EACCES)) {
    ::rmdir(dir.c_str());
    GTEST_SKIP() << "no read-only directory available to test with";
  }
  options_.cache_dir = dir;
  auto r = resolve_checkpoint(ref(), options_);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), "cache_readonly") << r.status().to_string();
  EXPECT_NE(r.status().message().find("HF_HUB_CACHE"), std::string::npos);
}

TEST_F(HubCacheTest, FourFetchProcessesDownloadOnce) {
  // The real `ecgq-worker fetch` when built, else this binary in fetch-helper mode.
  std::string exe = ecgq::test::bin("ecgq-worker");
  if (!fs::exists(exe)) exe = fs::read_symlink("/proc/self/exe").string();
  std::map<std::string, std::string> env = {{"ECGQ_TEST_FETCH_HELPER", "1"},
                                            {"HF_HUB_CACHE", cache_.path()},
                                            {"HF_ENDPOINT", hub_.endpoint()},
                                            {"HF_HOME", home_.path()}};
  std::vector<std::unique_ptr<ecgq::test::ChildProcess>> procs;
  for (int i = 0; i < 4; ++i) {
    procs.push_back(std::make_unique<ecgq::test::ChildProcess>(
        std::vector<std::string>{exe, "fetch", ref(), "--log-level", "info"}, env));
  }
  int waited = 0;
  std::string expected =
      sha256_hex(content_) + "  " + storage() + "/snapshots/" + kCommit + "/" + kFile + "\n";
  for (auto& p : procs) {
    ASSERT_EQ(p->wait(std::chrono::seconds(60)), 0) << p->stderr_text();
    EXPECT_EQ(p->stdout_text(), expected) << p->stderr_text();
    if (p->stderr_text().find("event=hub_lock_wait") != std::string::npos) ++waited;
  }
  // How many found the lock taken (timing-dependent, so recorded rather than asserted).
  RecordProperty("processes_that_waited_for_the_lock", waited);
  EXPECT_EQ(hub_.content_gets(kRepo, kFile), 1);
  EXPECT_EQ(hub_.heads(kRepo, kFile), 4);
  EXPECT_TRUE(fs::exists(storage() + "/blobs/" + sha256_hex(content_)));
}

TEST(HubSettings, DefaultsAndOverrides) {
  Settings s;
  s.declare("cache_dir", "", "cache");
  declare_hub_settings(s);
  auto defaults = hub_options_from_settings(s);
  ASSERT_TRUE(defaults.ok()) << defaults.status().to_string();
  EXPECT_TRUE(defaults->recheck);
  EXPECT_EQ(defaults->stall_timeout, Millis(30000));
  ASSERT_TRUE(s.set("hub_recheck", "false", "test").ok());
  ASSERT_TRUE(s.set("cache_dir", "/data/hub", "test").ok());
  ASSERT_TRUE(s.set("hub_stall_timeout", "2s", "test").ok());
  auto o = hub_options_from_settings(s);
  ASSERT_TRUE(o.ok());
  EXPECT_FALSE(o->recheck);
  EXPECT_EQ(o->cache_dir, "/data/hub");
  EXPECT_EQ(o->stall_timeout, Millis(2000));
  ASSERT_TRUE(s.set("hub_download_attempts", "0", "test").ok());
  auto bad = hub_options_from_settings(s);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().field(), "hub_download_attempts");
}

TEST_F(HubCacheTest, WriteFailureIsDiskFullAndLeavesNothing) {
  // A file size limit makes write() fail with EFBIG like a full disk would with ENOSPC.
  std::string exe = ecgq::test::bin("ecgq-worker");
  if (!fs::exists(exe)) exe = fs::read_symlink("/proc/self/exe").string();
  auto r = ecgq::test::run_command(
      {"/bin/bash", "-c", "trap '' XFSZ; ulimit -f 1024; exec \"$0\" fetch \"$1\"", exe, ref()},
      std::chrono::seconds(60),
      {{"ECGQ_TEST_FETCH_HELPER", "1"},
       {"HF_HUB_CACHE", cache_.path()},
       {"HF_ENDPOINT", hub_.endpoint()},
       {"HF_HOME", home_.path()}});
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_NE(r.err.find("disk_full"), std::string::npos) << r.err;
  EXPECT_TRUE(files_under(storage() + "/blobs").empty());
  EXPECT_TRUE(files_under(storage() + "/snapshots").empty());
}

TEST_F(HubCacheTest, FetchCommandReportsErrorsWithExitCode) {
  std::string self = fs::read_symlink("/proc/self/exe").string();
  auto r = ecgq::test::run_command({self, "fetch", "hf://wanglab/ecg-fm/absent.pt"},
                                   std::chrono::seconds(30),
                                   {{"ECGQ_TEST_FETCH_HELPER", "1"},
                                    {"HF_HUB_CACHE", cache_.path()},
                                    {"HF_ENDPOINT", hub_.endpoint()},
                                    {"HF_HOME", home_.path()}});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("hub_not_found"), std::string::npos) << r.err;
  auto usage = ecgq::test::run_command({self, "fetch"}, std::chrono::seconds(30),
                                       {{"ECGQ_TEST_FETCH_HELPER", "1"}});
  EXPECT_EQ(usage.exit_code, 2);
}
