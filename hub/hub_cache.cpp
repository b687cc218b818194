// The cache layout and locking follow huggingface_hub's file_download.py so that both tools share
// one cache: models--OWNER--REPO/{blobs/ETAG, snapshots/COMMIT/PATH -> ../../blobs/ETAG,
// refs/REVISION}, and <cache>/.locks/models--OWNER--REPO/ETAG.lock taken with flock.
#include "hub/hub_cache.hpp"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <optional>
#include <sstream>

#include "common/settings.hpp"
#include "common/sha256.hpp"
#include "common/time.hpp"
#include "hub/http_download.hpp"
#include "hub/hub_reference.hpp"

namespace ecgq {
namespace fs = std::filesystem;
namespace {

using Clock = SteadyClock;

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}

bool is_hex(const std::string& s, size_t len) {
  if (s.size() != len) return false;
  for (char c : s) {
    if (!std::isxdigit(static_cast<unsigned char>(c))) return false;
  }
  return true;
}

std::string home_dir() {
  std::string home = env("HOME");
  return home.empty() ? "/root" : home;
}

std::string hf_home() {
  std::string h = env("HF_HOME");
  if (!h.empty()) return h;
  std::string xdg = env("XDG_CACHE_HOME");
  return (xdg.empty() ? home_dir() + "/.cache" : xdg) + "/huggingface";
}

std::string token_from_environment() {
  for (const char* name : {"HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"}) {
    std::string t = env(name);
    if (!t.empty()) return t;
  }
  std::string path = env("HF_TOKEN_PATH");
  if (path.empty()) path = hf_home() + "/token";
  std::ifstream in(path);
  std::string token;
  if (in) std::getline(in, token);
  while (!token.empty() && std::isspace(static_cast<unsigned char>(token.back()))) token.pop_back();
  return token;
}

// The hub quotes ETags and may mark them weak; the cache names blobs by the bare value.
std::string normalize_etag(std::string etag) {
  if (etag.rfind("W/", 0) == 0) etag = etag.substr(2);
  if (etag.size() >= 2 && etag.front() == '"' && etag.back() == '"') {
    etag = etag.substr(1, etag.size() - 2);
  }
  return etag;
}

// sha256 of files by path+size+mtime, so each file is hashed once per process.
class HashMemo {
 public:
  Expected<std::string> sha256(const std::string& path, double* verify_ms) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) return file_error(errno, "reading", path);
    std::string key = key_of(path, st);
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = memo_.find(key);
      if (it != memo_.end()) return it->second;
    }
    auto t0 = Clock::now();
    auto hash = sha256_file(path);
    if (verify_ms) *verify_ms += ms_since(t0);
    if (!hash) return hash.status();
    std::lock_guard<std::mutex> lock(mu_);
    memo_[key] = *hash;
    return *hash;
  }
  void remember(const std::string& path, const std::string& sha256) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) return;
    std::lock_guard<std::mutex> lock(mu_);
    memo_[key_of(path, st)] = sha256;
  }

 private:
  static std::string key_of(const std::string& path, const struct stat& st) {
    return path + "|" + std::to_string(st.st_size) + "|" + std::to_string(st.st_mtim.tv_sec) + "." +
           std::to_string(st.st_mtim.tv_nsec) + "|" + std::to_string(st.st_ino);
  }
  std::mutex mu_;
  std::map<std::string, std::string> memo_;
};

HashMemo& memo() {
  static HashMemo m;
  return m;
}

// An exclusive flock held for the object's lifetime (released on close, even on a crash).
class FileLock {
 public:
  static Expected<std::unique_ptr<FileLock>> acquire(const std::string& path) {
    int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) return file_error(errno, "creating the lock", path);
    if (::flock(fd, LOCK_EX | LOCK_NB) == 0) return std::unique_ptr<FileLock>(new FileLock(fd));
    spdlog::info("event=hub_lock_wait lock={} reason=another_process_is_downloading", path);
    while (::flock(fd, LOCK_EX) != 0) {
      if (errno == EINTR) continue;
      int err = errno;
      ::close(fd);
      return file_error(err, "locking", path);
    }
    return std::unique_ptr<FileLock>(new FileLock(fd));
  }
  ~FileLock() { ::close(fd_); }
  FileLock(const FileLock&) = delete;
  FileLock& operator=(const FileLock&) = delete;

 private:
  explicit FileLock(int fd) : fd_(fd) {}
  int fd_;
};

Status make_dirs(const std::string& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return file_error(ec.value(), "creating directory", dir);
  return Status::Ok();
}

// Writes `content` to `path` through a temporary file in `tmp_dir` and an atomic rename.
Status write_atomically(const std::string& path, const std::string& content,
                        const std::string& tmp_dir) {
  RETURN_IF_ERROR(make_dirs(fs::path(path).parent_path().string()));
  std::string tmp = tmp_dir + "/.ecgq-tmp-" + std::to_string(::getpid()) + "-" +
                    fs::path(path).filename().string();
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) return file_error(errno, "writing", tmp);
    out << content;
    out.flush();
    if (!out) {
      int err = errno;
      fs::remove(tmp);
      return file_error(err, "writing", tmp);
    }
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    int err = errno;
    ::unlink(tmp.c_str());
    return file_error(err, "renaming into", path);
  }
  return Status::Ok();
}

// One repository folder of the cache.
class RepoCache {
 public:
  RepoCache(const std::string& cache_dir, const HubReference& ref)
      : cache_(cache_dir), ref_(ref), storage_(cache_dir + "/" + hub_repo_folder(ref)) {}

  std::string blob(const std::string& etag) const { return storage_ + "/blobs/" + etag; }
  std::string pointer(const std::string& commit) const {
    return storage_ + "/snapshots/" + commit + "/" + ref_.path;
  }
  std::string lock_path(const std::string& etag) const {
    return cache_ + "/.locks/" + hub_repo_folder(ref_) + "/" + etag + ".lock";
  }
  const std::string& storage() const { return storage_; }

  // The commit refs/<revision> names, if the file exists.
  std::optional<std::string> read_ref(const std::string& revision) const {
    std::ifstream in(storage_ + "/refs/" + revision);
    std::string commit;
    if (!in || !std::getline(in, commit)) return std::nullopt;
    while (!commit.empty() && std::isspace(static_cast<unsigned char>(commit.back()))) {
      commit.pop_back();
    }
    if (commit.empty()) return std::nullopt;
    return commit;
  }

  // Records revision -> commit (a commit revision needs no ref, as in huggingface_hub).
  Status write_ref(const std::string& revision, const std::string& commit) const {
    if (revision == commit) return Status::Ok();
    auto current = read_ref(revision);
    if (current && *current == commit) return Status::Ok();
    return write_atomically(storage_ + "/refs/" + revision, commit, storage_);
  }

  // snapshots/COMMIT/PATH -> relative symlink to blobs/ETAG.
  Status link_snapshot(const std::string& commit, const std::string& etag) const {
    std::string link = pointer(commit);
    fs::path dir = fs::path(link).parent_path();
    RETURN_IF_ERROR(make_dirs(dir.string()));
    std::string target = fs::path(blob(etag)).lexically_relative(dir).string();
    std::error_code ec;
    if (fs::is_symlink(link, ec) && fs::read_symlink(link, ec).string() == target) {
      return Status::Ok();
    }
    std::string tmp = dir.string() + "/.ecgq-tmp-" + std::to_string(::getpid()) + "-" +
                      fs::path(link).filename().string();
    ::unlink(tmp.c_str());
    if (::symlink(target.c_str(), tmp.c_str()) != 0) return file_error(errno, "linking", tmp);
    if (::rename(tmp.c_str(), link.c_str()) != 0) {
      int err = errno;
      ::unlink(tmp.c_str());
      return file_error(err, "linking", link);
    }
    return Status::Ok();
  }

  // The cached file of `commit`, if the snapshot has it (a dangling link counts as missing).
  std::optional<ResolvedCheckpoint> cached(const std::string& commit, double* verify_ms) const {
    std::string link = pointer(commit);
    struct stat st {};
    if (::stat(link.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) return std::nullopt;
    ResolvedCheckpoint out;
    out.path = link;
    out.commit = commit;
    out.size = static_cast<uint64_t>(st.st_size);
    std::error_code ec;
    std::string blob_name = fs::read_symlink(link, ec).filename().string();
    if (!ec && is_hex(blob_name, 64)) {
      out.sha256 = blob_name;  // an LFS blob is named by its sha256
    } else {
      std::string real = fs::canonical(link, ec).string();
      auto hash = memo().sha256(ec ? link : real, verify_ms);
      if (!hash) return std::nullopt;
      out.sha256 = *hash;
    }
    return out;
  }

 private:
  std::string cache_;
  HubReference ref_;
  std::string storage_;
};

// Logs bytes, percent, MB/s and ETA at most every `interval`.
class ProgressLog {
 public:
  ProgressLog(std::string reference, Millis interval)
      : reference_(std::move(reference)),
        interval_(interval),
        start_(Clock::now()),
        last_(start_) {}
  void operator()(uint64_t have, uint64_t total) {
    auto now = Clock::now();
    if (first_) {
      first_ = false;
      start_have_ = have;
    }
    if (now - last_ < interval_) return;
    last_ = now;
    double secs = std::chrono::duration<double>(now - start_).count();
    double rate = secs > 0 ? static_cast<double>(have - start_have_) / secs : 0;
    double percent = total > 0 ? 100.0 * static_cast<double>(have) / static_cast<double>(total) : 0;
    double eta = rate > 0 && total > have ? static_cast<double>(total - have) / rate : 0;
    spdlog::info(
        "event=hub_download_progress ref={} bytes={} total={} percent={:.1f} mb_per_s={:.2f} "
        "eta_s={:.0f}",
        reference_, have, total, percent, rate / 1e6, eta);
  }

 private:
  std::string reference_;
  Millis interval_;
  Clock::time_point start_;
  Clock::time_point last_;
  bool first_ = true;
  uint64_t start_have_ = 0;
};

Status with_context(const Status& st, const HubReference& ref, const std::string& endpoint) {
  std::string where = "repository " + ref.repo_id() + ", file " + ref.path + ", revision " +
                      ref.revision + " at " + endpoint;
  return Status(st.code(), where + ": " + st.message(), "checkpoint");
}

struct Download {
  std::string url;
  std::string token;
  std::string etag;
  uint64_t size = 0;
};

// Downloads the blob under the cross-process lock; returns once blobs/ETAG exists and verified.
Status fetch_blob(const RepoCache& repo, const Download& d, const HubOptions& options,
                  const HttpLimits& limits, const std::string& reference, ResolvedCheckpoint& out) {
  std::string blob = repo.blob(d.etag);
  std::string lock_path = repo.lock_path(d.etag);
  RETURN_IF_ERROR(make_dirs(fs::path(blob).parent_path().string()));
  RETURN_IF_ERROR(make_dirs(fs::path(lock_path).parent_path().string()));
  auto t_lock = Clock::now();
  ASSIGN_OR_RETURN(auto lock, FileLock::acquire(lock_path));
  out.lock_wait_ms = ms_since(t_lock);
  if (fs::exists(blob)) {
    spdlog::info("event=hub_download_by_other_process ref={} lock_wait_ms={:.0f}", reference,
                 out.lock_wait_ms);
    return Status::Ok();
  }
  std::string incomplete = blob + ".incomplete";
  ProgressLog progress(reference, options.progress_interval);
  auto t_download = Clock::now();
  int attempts = std::max(1, options.download_attempts);
  for (int attempt = 1;; ++attempt) {
    std::error_code ec;
    uint64_t have = fs::exists(incomplete, ec) ? fs::file_size(incomplete, ec) : 0;
    if (d.size > 0 && have > d.size) {
      fs::resize_file(incomplete, 0, ec);
      have = 0;
    }
    if (d.size > 0 && have == d.size) break;  // complete from an earlier attempt: verify it
    spdlog::info("event=hub_download_start ref={} bytes={} resume_from={} attempt={}", reference,
                 d.size, have, attempt);
    auto got = http_download(d.url, d.token, incomplete, limits,
                             [&](uint64_t h, uint64_t t) { progress(h, t ? t : d.size); });
    if (got) break;
    Status st = got.status();
    bool retry = st.is(ErrorCode::HubInterrupted) || st.is(ErrorCode::HubTimeout);
    if (!retry || attempt >= attempts) {
      if (st.is(ErrorCode::DiskFull)) ::unlink(incomplete.c_str());  // give the space back
      return st;
    }
    spdlog::warn("event=hub_download_retry ref={} attempt={} error={}", reference, attempt,
                 st.to_string());
  }
  out.download_ms = ms_since(t_download);
  out.downloaded = true;
  auto t_verify = Clock::now();
  bool git_sha1 = is_hex(d.etag, 40);
  auto hashes = hash_file(incomplete, git_sha1);
  out.verify_ms = ms_since(t_verify);
  if (!hashes) return hashes.status();
  std::string got = git_sha1 ? hashes->git_sha1 : hashes->sha256;
  bool checkable = git_sha1 || is_hex(d.etag, 64);
  if ((checkable && got != d.etag) || (d.size > 0 && hashes->size != d.size)) {
    ::unlink(incomplete.c_str());
    return Status(ErrorCode::HubChecksumMismatch,
                  std::string("downloaded bytes do not match: expected ") +
                      (git_sha1 ? "git-sha1 " : "sha256 ") + d.etag + " (" +
                      std::to_string(d.size) + " bytes), got " + got + " (" +
                      std::to_string(hashes->size) + " bytes); the download was discarded");
  }
  if (!checkable) {
    spdlog::warn("event=hub_unverified reason=etag_not_a_hash ref={} etag={}", reference, d.etag);
  }
  if (::rename(incomplete.c_str(), blob.c_str()) != 0) {
    return file_error(errno, "renaming into", blob);
  }
  memo().remember(blob, hashes->sha256);
  out.sha256 = hashes->sha256;
  spdlog::info("event=hub_download_verified ref={} bytes={} download_ms={:.0f} verify_ms={:.0f}",
               reference, hashes->size, out.download_ms, out.verify_ms);
  return Status::Ok();
}

// What one HEAD says about the file of a reference.
struct RemoteFile {
  std::string commit;
  std::string etag;  // the blob's sha256 (LFS) or git-sha1
  uint64_t size = 0;
};

// Resolves one hf:// reference: from the cache when the answer cannot change or the network is
// not to be used, else after one HEAD to the hub, downloading the blob when it is new.
class HubResolver {
 public:
  HubResolver(const std::string& reference, const HubReference& ref, const HubOptions& options)
      : reference_(reference), ref_(ref), options_(options), repo_(options.cache_dir, ref) {
    limits_.connect_timeout = options.connect_timeout;
    limits_.metadata_timeout = options.metadata_timeout;
    limits_.stall_timeout = options.stall_timeout;
    limits_.low_speed_bytes = options.low_speed_bytes;
    limits_.user_agent = std::string("ecgq/") + ECGQ_VERSION;
    url_ = options.endpoint + hub_resolve_path(ref);
  }

  Expected<ResolvedCheckpoint> resolve() {
    const bool commit_revision = is_commit_hash(ref_.revision);
    if (commit_revision) {
      if (auto hit = cached(ref_.revision)) return finish(*hit, "cache");
    }
    const std::optional<std::string> ref_commit =
        commit_revision ? std::optional<std::string>(ref_.revision) : repo_.read_ref(ref_.revision);
    if (options_.offline) return offline(ref_commit);
    if (!commit_revision && !options_.recheck && ref_commit) {
      if (auto hit = cached(*ref_commit)) return finish(*hit, "cache");
    }
    auto head = head_file();
    if (!head) return without_head(head.status(), ref_commit);
    ASSIGN_OR_RETURN(const RemoteFile file, remote_file(*head));
    return store(file);
  }

 private:
  // The cached snapshot of `commit`, if any.
  std::optional<ResolvedCheckpoint> cached(const std::string& commit) {
    auto hit = repo_.cached(commit, &verify_ms_);
    if (hit) hit->verify_ms = verify_ms_;
    return hit;
  }

  ResolvedCheckpoint finish(ResolvedCheckpoint r, const char* source) const {
    r.reference = reference_;
    spdlog::info("event=hub_resolved ref={} source={} commit={} sha256={} path={}", reference_,
                 source, r.commit, r.sha256, r.path);
    return r;
  }

  Status failed(const Status& st) const { return with_context(st, ref_, options_.endpoint); }

  Expected<ResolvedCheckpoint> offline(const std::optional<std::string>& ref_commit) {
    if (ref_commit) {
      if (auto hit = cached(*ref_commit)) return finish(*hit, "cache");
    }
    return Status(ErrorCode::HubOffline,
                  "offline mode (HF_HUB_OFFLINE=1 or --offline) and " + reference_ +
                      " is not in the cache " + options_.cache_dir + " (looked for " +
                      repo_.storage() + "/refs/" + ref_.revision +
                      " and its snapshot); run `ecgq-worker fetch " + reference_ +
                      "` with network access or unset HF_HUB_OFFLINE",
                  "checkpoint");
  }

  Expected<HttpResponse> head_file() const {
    auto head = http_head(url_, options_.token, limits_);
    if (head && head->status >= 300 && head->header("x-repo-commit").empty() &&
        !head->redirect_url.empty()) {
      // A renamed repository answers with a plain redirect to its new name: follow that one.
      head = http_head(head->redirect_url, options_.token, limits_);
    }
    return head;
  }

  // No answer from the hub: only a definite one (no access, no such file) overrides the cache;
  // outages do not.
  Expected<ResolvedCheckpoint> without_head(const Status& st,
                                            const std::optional<std::string>& ref_commit) {
    const bool definite = st.is(ErrorCode::HubAuth) || st.is(ErrorCode::HubNotFound);
    if (!definite && ref_commit) {
      if (auto hit = cached(*ref_commit)) {
        spdlog::warn("event=hub_recheck_failed action=use_cache ref={} error={}", reference_,
                     st.to_string());
        return finish(*hit, "cache");
      }
    }
    return failed(st);
  }

  Expected<RemoteFile> remote_file(const HttpResponse& head) const {
    RemoteFile f;
    f.commit = head.header("x-repo-commit");
    f.etag = normalize_etag(head.header("x-linked-etag"));
    if (f.etag.empty()) f.etag = normalize_etag(head.header("etag"));
    std::string size_text = head.header("x-linked-size");
    // A redirect's Content-Length is that of its own body, not of the file.
    if (size_text.empty() && head.status < 300) size_text = head.header("content-length");
    if (f.commit.empty() || f.etag.empty() || f.etag.find('/') != std::string::npos) {
      return failed(Status(ErrorCode::HubHttp, "the answer to HEAD " + url_ +
                                                   " lacks X-Repo-Commit or a usable ETag; is "
                                                   "HF_ENDPOINT a Hugging Face hub?"));
    }
    f.size = std::strtoull(size_text.c_str(), nullptr, 10);
    return f;
  }

  // The snapshot of `file` in the cache (downloading the blob when it is new), and the ref
  // pointed at its commit.
  Expected<ResolvedCheckpoint> store(const RemoteFile& file) {
    auto hit = repo_.cached(file.commit, &verify_ms_);
    ResolvedCheckpoint out;
    const char* source = "cache";
    if (!hit) {
      if (!fs::exists(repo_.blob(file.etag))) {
        Download d{url_, options_.token, file.etag, file.size};
        Status st = fetch_blob(repo_, d, options_, limits_, reference_, out);
        if (!st.ok()) return failed(st);
        source = out.downloaded ? "download" : "cache";
      }
      if (auto st = repo_.link_snapshot(file.commit, file.etag); !st.ok()) return failed(st);
      hit = repo_.cached(file.commit, &verify_ms_);
      if (!hit) {
        return failed(Status(ErrorCode::IoError, "snapshot " + repo_.pointer(file.commit) +
                                                     " is not readable after linking"));
      }
    }
    if (auto st = repo_.write_ref(ref_.revision, file.commit); !st.ok()) {
      if (out.downloaded || !st.is(ErrorCode::CacheReadonly)) return failed(st);
      spdlog::warn("event=hub_ref_not_updated reason=read_only ref={} error={}", reference_,
                   st.to_string());
    }
    hit->download_ms = out.download_ms;
    hit->verify_ms = out.verify_ms + verify_ms_;
    hit->lock_wait_ms = out.lock_wait_ms;
    hit->downloaded = out.downloaded;
    return finish(*hit, source);
  }

  const std::string& reference_;
  const HubReference& ref_;
  const HubOptions& options_;
  RepoCache repo_;
  HttpLimits limits_;
  std::string url_;
  double verify_ms_ = 0;
};

Expected<ResolvedCheckpoint> resolve_hub(const std::string& reference, const HubReference& ref,
                                         const HubOptions& options) {
  return HubResolver(reference, ref, options).resolve();
}

Expected<ResolvedCheckpoint> resolve_local(const std::string& reference) {
  struct stat st {};
  if (::stat(reference.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) {
    return Status(ErrorCode::CheckpointNotFound,
                  "checkpoint file " + reference + " does not exist or is not a regular file " +
                      "(expected a local path or hf://OWNER/REPO/PATH[@REVISION])",
                  "checkpoint");
  }
  ResolvedCheckpoint out;
  out.path = reference;
  out.reference = reference;
  out.size = static_cast<uint64_t>(st.st_size);
  ASSIGN_OR_RETURN(auto hash, memo().sha256(reference, &out.verify_ms));
  out.sha256 = hash;
  return out;
}

}  // namespace

std::string default_hub_cache_dir() {
  std::string dir = env("HF_HUB_CACHE");
  if (dir.empty()) dir = env("HUGGINGFACE_HUB_CACHE");
  if (!dir.empty()) return dir;
  return hf_home() + "/hub";
}

HubOptions hub_options_with_environment(HubOptions options) {
  if (options.cache_dir.empty()) options.cache_dir = default_hub_cache_dir();
  if (options.endpoint.empty()) options.endpoint = env("HF_ENDPOINT");
  if (options.endpoint.empty()) options.endpoint = "https://huggingface.co";
  while (!options.endpoint.empty() && options.endpoint.back() == '/') options.endpoint.pop_back();
  if (options.token.empty()) options.token = token_from_environment();
  if (env_flag("HF_HUB_OFFLINE")) options.offline = true;
  return options;
}

Expected<ResolvedCheckpoint> resolve_checkpoint(const std::string& reference,
                                                const HubOptions& options) {
  if (!is_hub_reference(reference)) return resolve_local(reference);
  ASSIGN_OR_RETURN(auto ref, parse_hub_reference(reference));
  return resolve_hub(reference, ref, hub_options_with_environment(options));
}

}  // namespace ecgq
