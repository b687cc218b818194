// libcurl transfers for the hub cache: a metadata request that does not follow redirects and a
// resumable download into a file that follows them by hand (dropping the token off-host).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>

#include "common/duration.hpp"
#include "common/status.hpp"

namespace ecgq {

// Network limits shared by every request of one resolve.
struct HttpLimits {
  Millis connect_timeout{10000};   // TCP + TLS connect
  Millis metadata_timeout{10000};  // whole HEAD / redirect request
  Millis stall_timeout{30000};     // abort when fewer than low_speed_bytes arrive in this time
  int64_t low_speed_bytes = 1024;  // the least progress per stall_timeout
  std::string user_agent = "ecgq";
};

// The status line and headers of one response (header names lower-cased).
struct HttpResponse {
  long status = 0;
  std::map<std::string, std::string> headers;
  std::string redirect_url;  // absolute Location for a 3xx, else empty
  // The header value, or "" when absent.
  std::string header(const std::string& lower_name) const;
};

// Sends one request with method HEAD (or GET without body for `get`) and no redirect following;
// `token` goes as a bearer token when not empty. Errors: hub_unreachable, hub_timeout.
Expected<HttpResponse> http_head(const std::string& url, const std::string& token,
                                 const HttpLimits& limits);

// Called during a download with bytes present in the file and the expected total (0: unknown).
using ProgressFn = std::function<void(uint64_t have, uint64_t total)>;

// What a download did.
struct DownloadOutcome {
  uint64_t resumed_from = 0;  // bytes already in the file that a Range request kept
  uint64_t file_size = 0;     // bytes in the file afterwards
};

// Appends the body of `url` to `path`, resuming with "Range: bytes=N-" when the file already
// holds N bytes; follows up to 10 redirects by hand and sends `token` only to the original host.
// Errors: hub_auth, hub_not_found, hub_http (other statuses), hub_unreachable, hub_timeout,
// hub_interrupted (connection lost mid-body: resume later), disk_full, cache_readonly, io_error.
Expected<DownloadOutcome> http_download(const std::string& url, const std::string& token,
                                        const std::string& path, const HttpLimits& limits,
                                        const ProgressFn& progress);

// Maps an errno from writing into the cache to disk_full / cache_readonly / io_error.
Status file_error(int err, const std::string& what, const std::string& path);

}  // namespace ecgq
