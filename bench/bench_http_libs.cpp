// The two HTTP server libraries Debian offers, serving the same two endpoints, for the choice in
// docs/gateway.md: `bench_http_libs beast|httplib PORT` serves GET /health (a small JSON) and
// POST /upload (reads the body, answers its size) until killed. Drive it with wrk (requests/s)
// and bench_slow_clients (a /health probe while 1,000 uploads trickle in).
#include <httplib.h>

#include <csignal>
#include <cstdio>
#include <string>
#include <thread>

#include "gateway/http_server.hpp"

namespace {

const std::string kHealth = "{\"status\":\"ok\",\"workers\":{\"warm\":1},\"queue\":0}";

volatile std::sig_atomic_t g_stop = 0;
extern "C" void on_signal(int) {
  g_stop = 1;
}

int serve_beast(int port) {
  using namespace ecgq::gateway;
  ServerOptions o;
  o.port = port;
  o.threads = 2;
  HttpServer server(
      o, [](const HttpRequest&) { return std::optional<HttpResponse>(); },
      [](HttpRequest request, Respond respond) {
        HttpResponse r;
        r.body = request.path == "/health" ? kHealth : std::to_string(request.body.size());
        respond(std::move(r));
      });
  if (auto s = server.start(); !s.ok()) {
    std::fprintf(stderr, "%s\n", s.to_string().c_str());
    return 1;
  }
  std::printf("beast listening on %d\n", server.port());
  std::fflush(stdout);
  while (!g_stop) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  return 0;
}

int serve_httplib(int port) {
  httplib::Server server;  // default: a pool of max(8, cores - 1) threads, 5 s read timeout
  server.Get("/health", [](const httplib::Request&, httplib::Response& res) {
    res.set_content(kHealth, "application/json");
  });
  server.Post("/upload", [](const httplib::Request& req, httplib::Response& res) {
    res.set_content(std::to_string(req.body.size()), "application/json");
  });
  std::thread stopper([&] {
    while (!g_stop) std::this_thread::sleep_for(std::chrono::milliseconds(100));
    server.stop();
  });
  std::printf("httplib listening on %d\n", port);
  std::fflush(stdout);
  server.listen("127.0.0.1", port);
  stopper.join();
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: bench_http_libs beast|httplib PORT\n");
    return 2;
  }
  std::signal(SIGTERM, on_signal);
  std::signal(SIGINT, on_signal);
  const std::string lib = argv[1];
  const int port = std::stoi(argv[2]);
  if (lib == "beast") return serve_beast(port);
  if (lib == "httplib") return serve_httplib(port);
  std::fprintf(stderr, "unknown library %s\n", lib.c_str());
  return 2;
}
