#include "broker/metrics_endpoint.hpp"

#include <spdlog/spdlog.h>

#include <charconv>

namespace ecgq::broker {

namespace {

gateway::HttpResponse plain(int status, std::string body) {
  gateway::HttpResponse r;
  r.status = status;
  r.content_type = "text/plain; charset=utf-8";
  r.body = std::move(body);
  return r;
}

}  // namespace

bool split_host_port(const std::string& text, std::string& host, int& port) {
  const size_t colon = text.rfind(':');
  if (colon == std::string::npos || colon == 0) return false;
  const char* first = text.data() + colon + 1;
  const char* last = text.data() + text.size();
  auto [end, ec] = std::from_chars(first, last, port);
  if (ec != std::errc() || end != last || port < 0 || port > 65535) return false;
  host = text.substr(0, colon);
  return true;
}

MetricsEndpoint::MetricsEndpoint(std::string host, int port) {
  gateway::ServerOptions options;
  options.host = std::move(host);
  options.port = port;
  options.threads = 1;
  // Scrapes are small GETs: tight bounds keep an exposed port cheap to hold.
  options.limits.max_connections = 64;
  options.limits.max_body_bytes = 0;
  options.limits.max_header_bytes = 8 << 10;
  options.limits.header_timeout = Millis(5000);
  options.limits.keep_alive_timeout = Millis(30000);
  // Only GET /metrics exists; anything else is answered before a body is read.
  auto head_check = [](const gateway::HttpRequest& head) -> std::optional<gateway::HttpResponse> {
    if (head.path != "/metrics") return plain(404, "only /metrics is served here\n");
    if (head.method != "GET" && head.method != "HEAD")
      return plain(405, "/metrics answers GET\n").with("Allow", "GET, HEAD");
    return std::nullopt;
  };
  auto handler = [this](gateway::HttpRequest, gateway::Respond respond) {
    std::lock_guard<std::mutex> lock(mutex_);
    waiting_.push_back(std::move(respond));
  };
  server_ = std::make_unique<gateway::HttpServer>(std::move(options), std::move(head_check),
                                                  std::move(handler));
}

MetricsEndpoint::~MetricsEndpoint() {
  server_->stop();
}

Status MetricsEndpoint::start() {
  RETURN_IF_ERROR(server_->start());
  spdlog::info("event=metrics_listening port={}", server_->port());
  return Status::Ok();
}

bool MetricsEndpoint::wanted() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return !waiting_.empty();
}

void MetricsEndpoint::answer(const std::string& text) {
  std::vector<gateway::Respond> waiting;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    waiting.swap(waiting_);
  }
  for (auto& respond : waiting) {
    gateway::HttpResponse r = plain(200, text);
    r.content_type = "text/plain; version=0.0.4; charset=utf-8";
    respond(std::move(r));
  }
}

}  // namespace ecgq::broker
