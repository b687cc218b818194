#include "hub/http_download.hpp"

#include <curl/curl.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <memory>
#include <mutex>

namespace ecgq {
namespace {

void ensure_curl() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

// One easy handle plus its header list, cleaned up together.
class Curl {
 public:
  Curl() : h_(curl_easy_init()) {}
  ~Curl() {
    if (list_) curl_slist_free_all(list_);
    if (h_) curl_easy_cleanup(h_);
  }
  Curl(const Curl&) = delete;
  Curl& operator=(const Curl&) = delete;
  CURL* get() const { return h_; }
  void add_header(const std::string& h) { list_ = curl_slist_append(list_, h.c_str()); }
  void apply_headers() { curl_easy_setopt(h_, CURLOPT_HTTPHEADER, list_); }

 private:
  CURL* h_;
  curl_slist* list_ = nullptr;
};

std::string trim(std::string s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.pop_back();
  size_t i = 0;
  while (i < s.size() && std::isspace(static_cast<unsigned char>(s[i]))) ++i;
  return s.substr(i);
}

size_t on_header(char* buf, size_t size, size_t n, void* user) {
  auto* response = static_cast<HttpResponse*>(user);
  std::string line(buf, size * n);
  if (line.rfind("HTTP/", 0) == 0) {
    response->headers.clear();  // a new response (e.g. after 100 Continue)
    return size * n;
  }
  size_t colon = line.find(':');
  if (colon != std::string::npos) {
    std::string name = line.substr(0, colon);
    std::transform(name.begin(), name.end(), name.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    response->headers[name] = trim(line.substr(colon + 1));
  }
  return size * n;
}

std::string host_of(const std::string& url) {
  CURLU* u = curl_url();
  std::string host;
  if (curl_url_set(u, CURLUPART_URL, url.c_str(), 0) == CURLUE_OK) {
    char* h = nullptr;
    char* port = nullptr;
    curl_url_get(u, CURLUPART_HOST, &h, 0);
    curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT);
    if (h) host = h;
    if (port) host += std::string(":") + port;
    curl_free(h);
    curl_free(port);
  }
  curl_url_cleanup(u);
  return host;
}

void common_options(const Curl& c, const std::string& url, const std::string& token,
                    const HttpLimits& limits, HttpResponse* response, char* errbuf) {
  CURL* h = c.get();
  curl_easy_setopt(h, CURLOPT_URL, url.c_str());
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(h, CURLOPT_USERAGENT, limits.user_agent.c_str());
  curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(limits.connect_timeout.count()));
  // curl measures stalls in whole seconds.
  long stall_s = std::max<long>(1, static_cast<long>((limits.stall_timeout.count() + 999) / 1000));
  curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT,
                   static_cast<long>(std::max<int64_t>(1, limits.low_speed_bytes)));
  curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, stall_s);
  curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(h, CURLOPT_HEADERDATA, response);
  curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
  // Content hashes refer to the stored bytes, so no transfer encoding may change them.
  curl_easy_setopt(h, CURLOPT_ACCEPT_ENCODING, nullptr);
  (void)token;
}

Status curl_status(CURLcode rc, CURL* handle, const std::string& url, const HttpLimits& limits,
                   const char* errbuf) {
  std::string detail = errbuf && *errbuf ? errbuf : curl_easy_strerror(rc);
  std::string host = host_of(url);
  curl_off_t connected_us = 0;
  curl_easy_getinfo(handle, CURLINFO_CONNECT_TIME_T, &connected_us);
  if (rc == CURLE_OPERATION_TIMEDOUT && connected_us == 0) {
    // Never connected: the network or the host is down rather than slow.
    return Status(ErrorCode::HubUnreachable,
                  "cannot connect to " + host + " within connect_timeout " +
                      format_duration(limits.connect_timeout) + " (" + detail +
                      "); set HF_HUB_OFFLINE=1 to use the local cache only");
  }
  switch (rc) {
    case CURLE_OPERATION_TIMEDOUT:
      return Status(ErrorCode::HubTimeout,
                    "no progress from " + host + " (stall_timeout " +
                        format_duration(limits.stall_timeout) + ", connect_timeout " +
                        format_duration(limits.connect_timeout) + "): " + detail);
    case CURLE_PARTIAL_FILE:
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_HTTP2_STREAM:
      return Status(ErrorCode::HubInterrupted,
                    "connection to " + host + " lost mid-transfer: " + detail);
    default:
      return Status(ErrorCode::HubUnreachable,
                    "cannot reach " + host + " (" + detail +
                        "); set HF_HUB_OFFLINE=1 to use the local cache only");
  }
}

Status http_status_error(long status, const std::string& url, const HttpResponse& response,
                         bool token_sent) {
  std::string code = response.header("x-error-code");
  std::string msg = response.header("x-error-message");
  std::string extra = (code.empty() ? "" : " " + code) + (msg.empty() ? "" : ": " + msg);
  if (status == 401 || status == 403) {
    return Status(ErrorCode::HubAuth,
                  "HTTP " + std::to_string(status) + " from " + url + extra + "; " +
                      (token_sent ? "the HF_TOKEN given is not accepted for this repository"
                                  : "no token was sent: set HF_TOKEN to a token that "
                                    "can read this repository"));
  }
  if (status == 404) return Status(ErrorCode::HubNotFound, "HTTP 404 from " + url + extra);
  return Status(ErrorCode::HubHttp, "HTTP " + std::to_string(status) + " from " + url + extra);
}

// The state a GET shares with its write callback.
struct Sink {
  int fd = -1;
  long status = 0;
  bool truncate_first = false;  // server ignored our Range: start the file over
  bool wrote = false;
  int write_errno = 0;
  CURL* handle = nullptr;
  uint64_t existing = 0;
  const ProgressFn* progress = nullptr;
  // Stall detection: curl's own low-speed check averages over ~5 s, too coarse for short limits.
  const HttpLimits* limits = nullptr;
  std::chrono::steady_clock::time_point mark = std::chrono::steady_clock::now();
  curl_off_t mark_bytes = 0;
  bool stalled = false;
};

size_t on_body(char* buf, size_t size, size_t n, void* user) {
  auto* sink = static_cast<Sink*>(user);
  size_t len = size * n;
  if (!sink->wrote) {
    curl_easy_getinfo(sink->handle, CURLINFO_RESPONSE_CODE, &sink->status);
    sink->wrote = true;
    if (sink->status == 200 && sink->existing > 0) {
      if (::ftruncate(sink->fd, 0) != 0) {
        sink->write_errno = errno;
        return 0;
      }
      sink->existing = 0;
    }
  }
  if (sink->status < 200 || sink->status >= 300) return len;  // error or redirect body: ignore
  size_t done = 0;
  while (done < len) {
    ssize_t w = ::write(sink->fd, buf + done, len - done);
    if (w < 0) {
      if (errno == EINTR) continue;
      sink->write_errno = errno;
      return 0;
    }
    done += static_cast<size_t>(w);
  }
  return len;
}

int on_progress(void* user, curl_off_t dltotal, curl_off_t dlnow, curl_off_t, curl_off_t) {
  auto* sink = static_cast<Sink*>(user);
  auto now = std::chrono::steady_clock::now();
  if (dlnow - sink->mark_bytes >= std::max<int64_t>(1, sink->limits->low_speed_bytes)) {
    sink->mark = now;
    sink->mark_bytes = dlnow;
  } else if (now - sink->mark > sink->limits->stall_timeout) {
    sink->stalled = true;
    return 1;  // aborts the transfer; reported as hub_timeout
  }
  if (sink->progress && *sink->progress && sink->status >= 200 && sink->status < 300) {
    uint64_t total = dltotal > 0 ? sink->existing + static_cast<uint64_t>(dltotal) : 0;
    (*sink->progress)(sink->existing + static_cast<uint64_t>(dlnow), total);
  }
  return 0;
}

}  // namespace

std::string HttpResponse::header(const std::string& lower_name) const {
  auto it = headers.find(lower_name);
  return it == headers.end() ? std::string() : it->second;
}

Status file_error(int err, const std::string& what, const std::string& path) {
  std::string detail = std::strerror(err);
  if (err == ENOSPC || err == EDQUOT || err == EFBIG) {
    return Status(ErrorCode::DiskFull,
                  "out of space while " + what + " " + path + " (" + detail +
                      "); free space on the cache volume or point HF_HUB_CACHE "
                      "elsewhere");
  }
  if (err == EROFS || err == EACCES || err == EPERM) {
    return Status(ErrorCode::CacheReadonly,
                  "cannot write the cache while " + what + " " + path + " (" + detail +
                      "); make it writable, point HF_HUB_CACHE to a writable "
                      "directory, or prefill it with `ecgq-worker fetch`");
  }
  return Status(ErrorCode::IoError, what + " " + path + ": " + detail);
}

Expected<HttpResponse> http_head(const std::string& url, const std::string& token,
                                 const HttpLimits& limits) {
  ensure_curl();
  Curl c;
  if (!c.get()) return Status(ErrorCode::Internal, "curl_easy_init failed");
  HttpResponse response;
  char errbuf[CURL_ERROR_SIZE] = {0};
  common_options(c, url, token, limits, &response, errbuf);
  curl_easy_setopt(c.get(), CURLOPT_NOBODY, 1L);
  curl_easy_setopt(c.get(), CURLOPT_TIMEOUT_MS, static_cast<long>(limits.metadata_timeout.count()));
  if (!token.empty()) c.add_header("Authorization: Bearer " + token);
  c.apply_headers();
  CURLcode rc = curl_easy_perform(c.get());
  if (rc != CURLE_OK) return curl_status(rc, c.get(), url, limits, errbuf);
  curl_easy_getinfo(c.get(), CURLINFO_RESPONSE_CODE, &response.status);
  char* redirect = nullptr;
  curl_easy_getinfo(c.get(), CURLINFO_REDIRECT_URL, &redirect);
  if (redirect) response.redirect_url = redirect;
  if (response.status >= 400)
    return http_status_error(response.status, url, response, !token.empty());
  return response;
}

Expected<DownloadOutcome> http_download(const std::string& url, const std::string& token,
                                        const std::string& path, const HttpLimits& limits,
                                        const ProgressFn& progress) {
  ensure_curl();
  std::string current = url;
  const std::string origin = host_of(url);
  DownloadOutcome outcome;
  for (int hop = 0; hop < 10; ++hop) {
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0) return file_error(errno, "creating", path);
    struct stat st {};
    ::fstat(fd, &st);
    Sink sink;
    sink.fd = fd;
    sink.existing = static_cast<uint64_t>(st.st_size);
    sink.progress = &progress;
    sink.limits = &limits;
    Curl c;
    sink.handle = c.get();
    HttpResponse response;
    char errbuf[CURL_ERROR_SIZE] = {0};
    // The token goes only to the host the user named, never to a CDN another host redirects to.
    bool send_token = !token.empty() && host_of(current) == origin;
    common_options(c, current, token, limits, &response, errbuf);
    curl_easy_setopt(c.get(), CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c.get(), CURLOPT_WRITEDATA, &sink);
    curl_easy_setopt(c.get(), CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(c.get(), CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(c.get(), CURLOPT_XFERINFODATA, &sink);
    curl_easy_setopt(c.get(), CURLOPT_BUFFERSIZE, 256L * 1024L);
    if (send_token) c.add_header("Authorization: Bearer " + token);
    if (sink.existing > 0) c.add_header("Range: bytes=" + std::to_string(sink.existing) + "-");
    c.apply_headers();
    CURLcode rc = curl_easy_perform(c.get());
    long status = 0;
    curl_easy_getinfo(c.get(), CURLINFO_RESPONSE_CODE, &status);
    ::fstat(fd, &st);
    int close_rc = ::close(fd);
    int close_errno = errno;
    if (sink.write_errno) return file_error(sink.write_errno, "writing", path);
    if (sink.stalled) {
      rc = CURLE_OPERATION_TIMEDOUT;
      std::snprintf(errbuf, sizeof errbuf, "fewer than %lld bytes received in %lld ms",
                    static_cast<long long>(limits.low_speed_bytes),
                    static_cast<long long>(limits.stall_timeout.count()));
    }
    if (rc != CURLE_OK) return curl_status(rc, c.get(), current, limits, errbuf);
    if (close_rc != 0) return file_error(close_errno, "closing", path);
    if (status >= 300 && status < 400) {
      char* redirect = nullptr;
      curl_easy_getinfo(c.get(), CURLINFO_REDIRECT_URL, &redirect);
      if (!redirect)
        return Status(ErrorCode::HubHttp,
                      "HTTP " + std::to_string(status) + " without Location from " + current);
      current = redirect;
      continue;
    }
    if (status == 416 && sink.existing > 0) {
      // Our partial file is not a prefix the server can continue (e.g. longer): start over.
      if (::truncate(path.c_str(), 0) != 0) return file_error(errno, "truncating", path);
      continue;
    }
    if ((status == 401 || status == 403) && host_of(current) != origin) {
      return Status(ErrorCode::HubHttp,
                    "HTTP " + std::to_string(status) + " from the download host " +
                        host_of(current) +
                        " the hub redirected to (an expired signed link?); retry");
    }
    if (status >= 400) return http_status_error(status, current, response, send_token);
    outcome.resumed_from = status == 206 ? sink.existing : 0;
    outcome.file_size = static_cast<uint64_t>(st.st_size);
    return outcome;
  }
  return Status(ErrorCode::HubHttp, "too many redirects from " + url);
}

}  // namespace ecgq
