// Slow uploads against an HTTP server: `bench_slow_clients HOST PORT N SECONDS [PATH] [HEADER]`
// opens N connections that each announce a 1 MB POST to PATH (default /upload) and then send one
// byte every 200 ms, and meanwhile times a GET /health on a fresh connection every 100 ms.
// Prints the /health latencies (p50, p99, max, failures) as one JSON line. HEADER (e.g.
// "Authorization: Bearer x") is added to every request.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

int connect_to(const std::string& host, int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  ::inet_pton(AF_INET, host.c_str(), &addr.sin_addr);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return -1;
  }
  const int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}

// One GET /health on a new connection; milliseconds until its status line arrived (any status:
// an answer is an answer), or -1.
double probe(const std::string& host, int port, const std::string& header) {
  const auto t0 = Clock::now();
  const int fd = connect_to(host, port);
  if (fd < 0) return -1;
  const std::string req = "GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" +
                          (header.empty() ? "" : header + "\r\n") + "\r\n";
  if (::send(fd, req.data(), req.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(req.size())) {
    ::close(fd);
    return -1;
  }
  pollfd p{fd, POLLIN, 0};
  char buf[512];
  double ms = -1;
  if (::poll(&p, 1, 5000) == 1 && ::recv(fd, buf, sizeof buf, 0) > 12 &&
      std::strncmp(buf, "HTTP/1.1 ", 9) == 0) {
    ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
  }
  ::close(fd);
  return ms;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 5) {
    std::fprintf(stderr, "usage: bench_slow_clients HOST PORT N SECONDS [PATH] [HEADER]\n");
    return 2;
  }
  const std::string host = argv[1];
  const int port = std::stoi(argv[2]);
  const int n = std::stoi(argv[3]);
  const double seconds = std::stod(argv[4]);
  const std::string path = argc > 5 ? argv[5] : "/upload";
  const std::string header = argc > 6 ? argv[6] : "";
  rlimit rl{};
  ::getrlimit(RLIMIT_NOFILE, &rl);
  rl.rlim_cur = rl.rlim_max;
  ::setrlimit(RLIMIT_NOFILE, &rl);

  std::vector<int> slow;
  const std::string head =
      "POST " + path + " HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\n" +
      (header.empty() ? "" : header + "\r\n") + "Content-Length: 1000000\r\n\r\n";
  for (int i = 0; i < n; ++i) {
    const int fd = connect_to(host, port);
    if (fd < 0) break;
    ::send(fd, head.data(), head.size(), MSG_NOSIGNAL);
    slow.push_back(fd);
  }
  std::vector<double> lat;
  int failures = 0;
  const auto end = Clock::now() + std::chrono::duration<double>(seconds);
  auto next_trickle = Clock::now();
  while (Clock::now() < end) {
    if (Clock::now() >= next_trickle) {
      for (int fd : slow) ::send(fd, "x", 1, MSG_NOSIGNAL | MSG_DONTWAIT);
      next_trickle += std::chrono::milliseconds(200);
    }
    const double ms = probe(host, port, header);
    if (ms < 0) {
      ++failures;
    } else {
      lat.push_back(ms);
    }
    ::usleep(100000);
  }
  for (int fd : slow) ::close(fd);
  std::sort(lat.begin(), lat.end());
  auto pct = [&](double q) {
    return lat.empty() ? -1.0 : lat[std::min(lat.size() - 1, static_cast<size_t>(q * lat.size()))];
  };
  std::printf(
      "{\"slow_connections\": %zu, \"probes\": %zu, \"failures\": %d, \"p50_ms\": %.2f, "
      "\"p99_ms\": %.2f, \"max_ms\": %.2f}\n",
      slow.size(), lat.size(), failures, pct(0.5), pct(0.99), lat.empty() ? -1.0 : lat.back());
  return 0;
}
