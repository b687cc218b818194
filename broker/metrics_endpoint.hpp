// The broker's GET /metrics (setting `metrics_bind`): an HTTP listener on its own threads (the
// gateway's bounded asynchronous server) that never touches the broker's state. A scrape is
// parked until the broker loop, on its next turn (at most ~50 ms), renders the text once for
// every scrape waiting; so the numbers are the loop's own, read without locks.
#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "common/status.hpp"
#include "gateway/http_server.hpp"

namespace ecgq::broker {

// The /metrics listener and the scrapes waiting for the loop.
class MetricsEndpoint {
 public:
  // Prepares a listener on `host`:`port` (port 0 = any free one); nothing listens before start().
  MetricsEndpoint(std::string host, int port);
  ~MetricsEndpoint();
  MetricsEndpoint(const MetricsEndpoint&) = delete;
  MetricsEndpoint& operator=(const MetricsEndpoint&) = delete;

  // Binds and starts the listener threads.
  Status start();
  // True when scrapes wait for the loop (cheap: checked on every loop turn).
  bool wanted() const;
  // Answers every waiting scrape with `text` (the exposition format).
  void answer(const std::string& text);
  // The port listened on.
  int port() const { return server_->port(); }

 private:
  mutable std::mutex mutex_;
  std::vector<gateway::Respond> waiting_;
  std::unique_ptr<gateway::HttpServer> server_;
};

// Splits "HOST:PORT" (the setting's form); false when it is not one.
bool split_host_port(const std::string& text, std::string& host, int& port);

}  // namespace ecgq::broker
