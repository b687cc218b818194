// Gateway fixtures: a real ecgq-broker, an `ecgq-worker serve` on the tiny demo model and
// ecgq-gateway processes on 127.0.0.1, spoken to with cpp-httplib's client and raw sockets.
#pragma once

#include <arpa/inet.h>
#include <httplib.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "client/json_output.hpp"
#include "tests/support/process.hpp"
#include "tests/test_e2e_cluster.hpp"

namespace ecgq::test {

// The tiny demo model shipped in data/ (random weights, 17 labels).
inline std::string demo_model() {
  return source("data/models/demo-random-weights-tiny.pt");
}

// An ecgq-worker serving ecg-fm with the demo model.
inline std::unique_ptr<ChildProcess> start_demo_worker(const std::string& endpoint,
                                                       const std::string& id) {
  std::vector<std::string> argv{bin("ecgq-worker"), "serve",      "--broker",    endpoint,
                                "--checkpoint",     demo_model(), "--worker-id", id,
                                "--threads",        "1"};
  argv.insert(argv.end(), kHeartbeat.begin(), kHeartbeat.end());
  return std::make_unique<ChildProcess>(argv);
}

// An ecgq-gateway process; ready once GET /v2/health/live answers.
class GatewayProcess {
 public:
  GatewayProcess(const std::string& broker, std::vector<std::string> extra = {}, bool tls = false) {
    for (int attempt = 0; attempt < 3 && !ready; ++attempt) {
      port = free_port();
      std::vector<std::string> argv{bin("ecgq-gateway"),
                                    "--broker",
                                    broker,
                                    "--bind",
                                    "127.0.0.1:" + std::to_string(port),
                                    "--status-interval",
                                    "200ms",
                                    "--log-level",
                                    "debug"};
      argv.insert(argv.end(), extra.begin(), extra.end());
      proc = std::make_unique<ChildProcess>(argv);
      ready = wait_until(
                  [&] {
                    if (!proc->running()) return true;
                    if (tls) {
                      httplib::SSLClient c("127.0.0.1", port);
                      c.enable_server_certificate_verification(false);
                      auto r = c.Get("/v2/health/live");
                      return r && r->status == 200;
                    }
                    httplib::Client c("127.0.0.1", port);
                    auto r = c.Get("/v2/health/live");
                    return r && r->status == 200;
                  },
                  20s) &&
              proc->running();
    }
  }
  // A client of this gateway with test-sized timeouts.
  std::unique_ptr<httplib::Client> client() const {
    auto c = std::make_unique<httplib::Client>("127.0.0.1", port);
    c->set_read_timeout(60, 0);
    c->set_connection_timeout(5, 0);
    return c;
  }
  int port = 0;
  std::unique_ptr<ChildProcess> proc;
  bool ready = false;
};

// JSON of a response body (null when it is not JSON).
inline client::Json body_json(const httplib::Result& r) {
  if (!r) return nullptr;
  auto j = client::Json::parse(r->body, nullptr, false);
  return j.is_discarded() ? client::Json(nullptr) : j;
}

// One broker, one worker on the demo model (worker id `Suite::kWorkerId`) and one gateway shared
// by the tests of a suite `Suite` deriving from GatewaySuite<Suite>; each test starts once the
// gateway's /health reports the model loaded.
template <typename Suite>
class GatewaySuite : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    broker_ = new Broker();
    worker_ = start_demo_worker(broker_->endpoint, Suite::kWorkerId).release();
    gateway_ = new GatewayProcess(broker_->endpoint);
  }
  static void TearDownTestSuite() {
    delete gateway_;
    delete worker_;
    delete broker_;
  }
  void SetUp() override {
    ECGQ_REQUIRE_BINARIES("ecgq-broker", "ecgq-worker", "ecgq-gateway", "ecgq");
    ASSERT_TRUE(broker_->ready) << broker_->diagnostics();
    ASSERT_TRUE(gateway_->ready) << gateway_->proc->stderr_text();
    auto c = gateway_->client();
    ASSERT_TRUE(wait_until(
        [&] {
          auto r = c->Get("/health");
          return r && r->status == 200 && body_json(r).value("model_loaded", false);
        },
        60s))
        << gateway_->proc->stderr_text();
  }
  static inline Broker* broker_ = nullptr;
  static inline ChildProcess* worker_ = nullptr;
  static inline GatewayProcess* gateway_ = nullptr;
};

// The contents of a file.
inline std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// A file part of a multipart upload.
inline httplib::MultipartFormData file_part(const std::string& path) {
  const std::string name = path.substr(path.rfind('/') + 1);
  return {"file", read_file(path), name, "application/octet-stream"};
}

// A connected TCP socket to 127.0.0.1:port (-1 on failure).
inline int tcp_connect(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

// Everything the peer sends until it closes or `wait` passes without data.
inline std::string recv_all(int fd, Millis wait) {
  std::string out;
  char buf[4096];
  while (true) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(wait.count())) != 1) break;
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

// Sends raw bytes (MSG_NOSIGNAL: a closed peer is not a crash).
inline void send_raw(int fd, const std::string& data) {
  ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
}

// The value of `field` (e.g. "VmRSS") in /proc/PID/status, in kB (-1 when unreadable).
inline int64_t proc_status_kb(int pid, const std::string& field) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(field + ":", 0) == 0) return std::stoll(line.substr(field.size() + 1));
  }
  return -1;
}

// A 12-lead CSV record at 500 Hz (header row of lead names, "# fs: 500" comment).
inline void write_csv_record(const std::string& path, int64_t samples) {
  const std::vector<float> v = synthetic_ecg(samples);
  std::ofstream out(path);
  out << "# fs: 500\n";
  for (size_t l = 0; l < kModelLeads.size(); ++l) out << (l ? "," : "") << kModelLeads[l];
  out << "\n";
  for (int64_t t = 0; t < samples; ++t) {
    for (int64_t l = 0; l < 12; ++l)
      out << (l ? "," : "") << v[static_cast<size_t>(l * samples + t)];
    out << "\n";
  }
}

// A [12, samples] float32 .npy record (NumPy format 1.0).
inline void write_npy_record(const std::string& path, int64_t samples) {
  const std::vector<float> v = synthetic_ecg(samples);
  std::string header =
      "{'descr': '<f4', 'fortran_order': False, 'shape': (12, " + std::to_string(samples) + "), }";
  while ((10 + header.size() + 1) % 64 != 0) header += ' ';
  header += '\n';
  std::ofstream out(path, std::ios::binary);
  out.write("\x93NUMPY\x01\x00", 8);
  const uint16_t len = static_cast<uint16_t>(header.size());
  out.write(reinterpret_cast<const char*>(&len), 2);
  out << header;
  out.write(reinterpret_cast<const char*>(v.data()), static_cast<std::streamsize>(v.size() * 4));
}

// The synthetic record as the JSON samples of /predict: {samples: [[lead 0], ...], fs}.
inline std::string samples_json(int64_t samples, double fs = 500) {
  const std::vector<float> v = synthetic_ecg(samples);
  client::Json rows = client::Json::array();
  for (int64_t l = 0; l < 12; ++l) {
    client::Json row = client::Json::array();
    for (int64_t t = 0; t < samples; ++t) row.push_back(v[static_cast<size_t>(l * samples + t)]);
    rows.push_back(row);
  }
  return client::Json{{"samples", rows}, {"fs", fs}}.dump();
}

}  // namespace ecgq::test
