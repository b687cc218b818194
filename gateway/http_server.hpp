// The gateway's HTTP/1.1 server on Boost.Beast/Asio (docs/gateway.md says why): a few I/O threads
// serve every connection asynchronously, so a slow upload or an idle client costs a buffer, never
// a thread; bodies, headers, connections and every wait are bounded.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "common/duration.hpp"
#include "common/status.hpp"
#include "gateway/http_message.hpp"

namespace ecgq::gateway {

// What the server enforces on every connection.
struct ServerLimits {
  int64_t max_connections = 4096;
  int64_t max_body_bytes = int64_t{64} << 20;
  int64_t max_header_bytes = 16 << 10;
  Millis header_timeout{10000};
  Millis body_timeout{60000};
  Millis keep_alive_timeout{30000};
};

// Where and how to listen.
struct ServerOptions {
  std::string host = "127.0.0.1";
  int port = 8080;  // 0 = any free port (see HttpServer::port)
  int threads = 2;
  std::string tls_cert;  // PEM files; both empty = plain HTTP
  std::string tls_key;
  ServerLimits limits;
};

// Connection counts for /metrics.
struct ServerStats {
  std::atomic<int64_t> open{0};      // connections open now
  std::atomic<int64_t> accepted{0};  // connections accepted since start
  std::atomic<int64_t> refused{0};   // closed at once because max_connections were open
  std::atomic<int64_t> timeouts{0};  // closed because a header, body or idle wait ran out
};

// Sends a request's response; callable from any thread, exactly once per request.
using Respond = std::function<void(HttpResponse)>;
// Handles a whole request (body read); must not block: answer through `respond`, later if need be.
using RequestHandler = std::function<void(HttpRequest request, Respond respond)>;
// Looks at a request whose headers arrived, before any of its body is read: a response returned
// here is sent at once (401, 404, 415 before a large upload is accepted) and the connection closed
// when a body was announced.
using HeadCheck = std::function<std::optional<HttpResponse>(const HttpRequest& head)>;

// The listening server; stop() (or destruction) closes every connection.
class HttpServer {
 public:
  // Prepares a server; nothing listens before start().
  HttpServer(ServerOptions options, HeadCheck head_check, RequestHandler handler);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Loads TLS files, binds, listens and starts the I/O threads.
  Status start();
  // Stops accepting new connections; open ones are still served.
  void stop_accepting();
  // Stops accepting, closes connections and joins the threads.
  void stop();
  // The port listened on (the chosen one when options.port was 0).
  int port() const { return port_; }
  // Connection counts.
  const ServerStats& stats() const { return *stats_; }

 private:
  struct Impl;
  ServerOptions options_;
  HeadCheck head_check_;
  RequestHandler handler_;
  std::shared_ptr<ServerStats> stats_;
  std::unique_ptr<Impl> impl_;
  std::vector<std::thread> threads_;
  int port_ = 0;
};

}  // namespace ecgq::gateway
