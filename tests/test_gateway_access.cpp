// ecgq-gateway's doors and limits with real processes: bearer tokens and the scope of async jobs,
// HTTPS with a self-signed certificate, the broker's refusals as 429/503/504 with Retry-After,
// and what a hostile or broken client can do: an oversized upload answered before it is read,
// half-sent and stalled uploads, garbage, 10,000 idle connections, 1,000 slow uploads.
#include <sys/resource.h>

#include <algorithm>
#include <csignal>
#include <thread>

#include "tests/test_gateway_support.hpp"

namespace ecgq::test {
namespace {

const std::string kAlice = "alice-0123456789abcdef";
const std::string kBob = "bob-fedcba9876543210xyz";

httplib::Headers bearer(const std::string& token) {
  return {{"Authorization", "Bearer " + token}};
}

// A tokens file for alice and bob.
std::string write_tokens(const TempDir& dir) {
  std::ofstream f(dir.file("tokens"));
  f << "# name token\nalice " << kAlice << "\nbob " << kBob << "\n";
  return dir.file("tokens");
}

TEST(GatewayAccess, TokensGuardEverythingButHealthAndScopeJobs) {
  ECGQ_REQUIRE_BINARIES("ecgq-broker", "ecgq-worker", "ecgq-gateway");
  Broker broker;
  ASSERT_TRUE(broker.ready) << broker.diagnostics();
  auto worker = start_demo_worker(broker.endpoint, "tok-w1");
  TempDir dir;
  GatewayProcess gw(broker.endpoint, {"--tokens", write_tokens(dir)});
  ASSERT_TRUE(gw.ready) << gw.proc->stderr_text();
  auto c = gw.client();
  ASSERT_TRUE(wait_until([&] { return c->Get("/health")->status == 200; }, 60s));
  EXPECT_EQ(c->Get("/v2/health/ready")->status, 200);
  auto none = c->Get("/info");
  EXPECT_EQ(none->status, 401);
  EXPECT_EQ(none->get_header_value("WWW-Authenticate").rfind("Bearer", 0), 0u);
  EXPECT_EQ(body_json(none)["error"]["code"], "unauthorized");
  EXPECT_EQ(c->Get("/info", bearer("not-a-token-at-all-xx"))->status, 401);
  EXPECT_EQ(c->Get("/metrics")->status, 401);
  EXPECT_EQ(c->Get("/info", bearer(kAlice))->status, 200);
  // An upload without a token is refused before its body is read.
  EXPECT_EQ(c->Post("/predict", samples_json(5000), "application/json")->status, 401);
  auto r = c->Post("/predict?async=1", bearer(kAlice), samples_json(5000), "application/json");
  ASSERT_EQ(r->status, 202) << r->body;
  const std::string location = r->get_header_value("Location");
  EXPECT_EQ(c->Get(location.c_str(), bearer(kBob))->status, 403);
  ASSERT_TRUE(wait_until(
      [&] {
        return body_json(c->Get(location.c_str(), bearer(kAlice))).value("state", "") == "done";
      },
      30s));
  // The log names the caller and never shows a token.
  const std::string log = gw.proc->stderr_text();
  EXPECT_NE(log.find("token=alice"), std::string::npos);
  EXPECT_EQ(log.find(kAlice), std::string::npos);
  EXPECT_EQ(log.find(kBob), std::string::npos);
}

TEST(GatewayAccess, UsageHelpVersionAndBadSettings) {
  ECGQ_REQUIRE_BINARIES("ecgq-gateway");
  auto help = run_command({bin("ecgq-gateway"), "--help"}, 10s);
  EXPECT_EQ(help.exit_code, 0);
  for (const char* flag : {"--broker", "--bind", "--service", "--tokens", "--tls-cert", "--tls-key",
                           "--allow-insecure", "--max-body-bytes", "--config"})
    EXPECT_NE(help.out.find(flag), std::string::npos) << flag;
  auto version = run_command({bin("ecgq-gateway"), "--version"}, 10s);
  EXPECT_EQ(version.exit_code, 0);
  EXPECT_NE(version.out.find("ecgq-gateway"), std::string::npos);
  EXPECT_EQ(run_command({bin("ecgq-gateway"), "--no-such-flag"}, 10s).exit_code, 2);
  auto bad = run_command({bin("ecgq-gateway"), "--max-body-bytes", "lots"}, 10s);
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.err.find("max_body_bytes"), std::string::npos) << bad.err;
  // The environment is a layer too, under the flags.
  auto env = run_command({bin("ecgq-gateway")}, 10s, {{"ECGQ_HEADER_TIMEOUT", "soon"}});
  EXPECT_EQ(env.exit_code, 2);
  EXPECT_NE(env.err.find("header_timeout"), std::string::npos) << env.err;
  auto shipped = run_command(
      {bin("ecgq-gateway"), "--config", source("config/gateway.yaml"), "--bind", "127.0.0.1:99999"},
      10s);
  EXPECT_EQ(shipped.exit_code, 2);  // the file loads; the flag wins and is checked
  EXPECT_NE(shipped.err.find("bind"), std::string::npos) << shipped.err;
}

TEST(GatewayAccess, NonLoopbackBindNeedsTokensOrAllowInsecure) {
  ECGQ_REQUIRE_BINARIES("ecgq-gateway");
  auto r =
      run_command({bin("ecgq-gateway"), "--bind", "0.0.0.0:" + std::to_string(free_port())}, 10s);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("allow_insecure"), std::string::npos) << r.err;
  auto bad = run_command({bin("ecgq-gateway"), "--bind", "nonsense"}, 10s);
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.err.find("bind"), std::string::npos);
  const int port = free_port();
  ChildProcess open({bin("ecgq-gateway"), "--allow-insecure", "true", "--bind",
                     "0.0.0.0:" + std::to_string(port), "--broker", "tcp://127.0.0.1:1"});
  // 0.0.0.0 serves 127.0.0.1 too.
  httplib::Client c("127.0.0.1", port);
  ASSERT_TRUE(wait_until(
      [&] {
        auto r = c.Get("/v2/health/live");
        return r && r->status == 200;
      },
      20s))
      << open.stderr_text();
  EXPECT_NE(open.stderr_text().find("event=insecure_bind"), std::string::npos);
}

TEST(GatewayAccess, HttpsWithASelfSignedCertificate) {
  ECGQ_REQUIRE_BINARIES("ecgq-broker", "ecgq-worker", "ecgq-gateway");
  TempDir dir;
  auto cert = run_command({"/usr/bin/openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                           "-keyout", dir.file("key.pem"), "-out", dir.file("cert.pem"), "-days",
                           "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"},
                          60s);
  ASSERT_EQ(cert.exit_code, 0) << cert.err;
  Broker broker;
  ASSERT_TRUE(broker.ready) << broker.diagnostics();
  auto worker = start_demo_worker(broker.endpoint, "tls-w1");
  GatewayProcess gw(broker.endpoint,
                    {"--tls-cert", dir.file("cert.pem"), "--tls-key", dir.file("key.pem")}, true);
  ASSERT_TRUE(gw.ready) << gw.proc->stderr_text();
  httplib::SSLClient c("127.0.0.1", gw.port);
  c.set_ca_cert_path(dir.file("cert.pem").c_str());
  c.enable_server_certificate_verification(true);
  c.set_read_timeout(60, 0);
  ASSERT_TRUE(wait_until(
      [&] {
        auto r = c.Get("/health");
        return r && r->status == 200;
      },
      60s));
  auto r = c.Post("/predict", samples_json(5000), "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(body_json(r)["probs"].size(), 17u);
  // Plain HTTP on the TLS port gets no HTTP answer.
  httplib::Client plain("127.0.0.1", gw.port);
  plain.set_read_timeout(5, 0);
  auto p = plain.Get("/health");
  EXPECT_TRUE(!p || p->status != 200);
  // A missing key file is a clear start-up error.
  auto bad = run_command({bin("ecgq-gateway"), "--bind", "127.0.0.1:" + std::to_string(free_port()),
                          "--tls-cert", dir.file("cert.pem"), "--tls-key", dir.file("none.pem")},
                         10s);
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_NE(bad.err.find("TLS"), std::string::npos) << bad.err;
}

TEST(GatewayAccess, BrokerRefusalsBecome429And503And504) {
  ECGQ_REQUIRE_BINARIES("ecgq-broker", "ecgq-gateway");
  // A service without workers: jobs wait, the queue holds one, no_worker after 3 s.
  Broker broker({"--max-queue", "1", "--service-wait", "3s", "--ecgq-services", "ecg-fm,idle"});
  ASSERT_TRUE(broker.ready) << broker.diagnostics();
  GatewayProcess gw(broker.endpoint, {"--service", "idle"});
  ASSERT_TRUE(gw.ready) << gw.proc->stderr_text();
  auto c = gw.client();
  // /health: the broker answers but no worker serves "idle".
  ASSERT_TRUE(wait_until([&] { return body_json(c->Get("/health")).contains("reason"); }, 10s));
  auto health = c->Get("/health");
  EXPECT_EQ(health->status, 503);
  EXPECT_FALSE(health->get_header_value("Retry-After").empty());
  EXPECT_EQ(c->Get("/v2/health/ready")->status, 400);
  // A deadline that runs out in the queue: 504.
  auto late = c->Post("/predict?deadline=300ms", samples_json(5000), "application/json");
  EXPECT_EQ(late->status, 504) << late->body;
  EXPECT_EQ(body_json(late)["error"]["code"], "deadline_exceeded");
  // One queued job fills the queue: the next gets 429 with Retry-After.
  auto held = c->Post("/predict?async=1", samples_json(5000), "application/json");
  ASSERT_EQ(held->status, 202);
  auto full = c->Post("/predict", samples_json(5000), "application/json");
  EXPECT_EQ(full->status, 429) << full->body;
  EXPECT_EQ(body_json(full)["error"]["code"], "queue_full");
  EXPECT_FALSE(full->get_header_value("Retry-After").empty());
  auto full_v2 = c->Post("/v2/models/ecg-fm/infer",
                         R"({"inputs":[{"name":"ecg","shape":[1,2500],"datatype":"FP32","data":)"
                         "[" +
                             std::string(2500 * 2 - 1, ',') + "]}]}",
                         "application/json");
  EXPECT_EQ(full_v2->status, 400);  // malformed data is refused before the broker
  // The held job ends with no_worker: 503, recorded on its job.
  const std::string location = held->get_header_value("Location");
  client::Json job;
  ASSERT_TRUE(wait_until(
      [&] {
        job = body_json(c->Get(location.c_str()));
        return job.value("state", "") == "failed";
      },
      15s))
      << job.dump();
  EXPECT_EQ(job["http_status"], 503);
  EXPECT_EQ(job["error"]["code"], "no_worker");
}

TEST(GatewayAccess, AClientThatLeavesHasItsQueuedJobCancelled) {
  ECGQ_REQUIRE_BINARIES("ecgq-broker", "ecgq-gateway");
  Broker broker({"--service-wait", "60s", "--ecgq-services", "ecg-fm,idle"});
  ASSERT_TRUE(broker.ready) << broker.diagnostics();
  GatewayProcess gw(broker.endpoint, {"--service", "idle"});
  ASSERT_TRUE(gw.ready) << gw.proc->stderr_text();
  auto c = gw.client();
  auto queued = [&] {
    const auto h = body_json(c->Get("/health"));
    return h.is_object() && h["queue"].is_object() ? h["queue"].value("queued", -1) : -1;
  };
  for (const char* path : {"/predict", "/v2/models/ecg-fm/infer"}) {
    std::string zeros = "0";
    for (int i = 1; i < 2500; ++i) zeros += ",0";
    const std::string body =
        std::string(path) == "/predict"
            ? samples_json(2500)
            : R"({"inputs":[{"name":"ecg","shape":[1,2500],"datatype":"FP32","data":[)" + zeros +
                  R"(]}],"parameters":{"fs":500,"leads":"II"}})";
    const int fd = tcp_connect(gw.port);
    send_raw(fd, std::string("POST ") + path +
                     " HTTP/1.1\r\nHost: x\r\nContent-Type: "
                     "application/json\r\nContent-Length: " +
                     std::to_string(body.size()) + "\r\n\r\n" + body);
    ASSERT_TRUE(wait_until([&] { return queued() == 1; }, 10s)) << path;
    ::close(fd);  // the client gives up
    EXPECT_TRUE(wait_until([&] { return queued() == 0; }, 10s)) << path;
  }
  const std::string metrics = c->Get("/metrics")->body;
  EXPECT_NE(metrics.find("ecgq_gateway_jobs_total{outcome=\"cancelled\"} 2"), std::string::npos)
      << metrics;
}

TEST(GatewayAccess, JobsOfAnotherGatewayAreReadFromTheBroker) {
  ECGQ_REQUIRE_BINARIES("ecgq-broker", "ecgq-worker", "ecgq-gateway");
  Broker broker;
  ASSERT_TRUE(broker.ready) << broker.diagnostics();
  auto worker = start_demo_worker(broker.endpoint, "job-w1");
  std::string location;
  {
    GatewayProcess first(broker.endpoint);
    ASSERT_TRUE(first.ready) << first.proc->stderr_text();
    auto c = first.client();
    ASSERT_TRUE(wait_until([&] { return c->Get("/health")->status == 200; }, 60s));
    auto r = c->Post("/predict?async=1", samples_json(5000), "application/json");
    ASSERT_EQ(r->status, 202) << r->body;
    location = r->get_header_value("Location");
    ASSERT_TRUE(wait_until(
        [&] { return body_json(c->Get(location.c_str())).value("state", "") == "done"; }, 30s));
  }  // the first gateway is gone, and its record of the job with it
  GatewayProcess second(broker.endpoint);
  ASSERT_TRUE(second.ready) << second.proc->stderr_text();
  auto c = second.client();
  auto r = c->Get(location.c_str());
  ASSERT_EQ(r->status, 200) << r->body;
  auto j = body_json(r);
  EXPECT_EQ(j["state"], "done");
  EXPECT_EQ(j["http_status"], 200);
  EXPECT_EQ(j["result"]["probs"].size(), 17u);
  EXPECT_EQ("/jobs/" + j["result"]["id"].get<std::string>(), location);
  // An id of the gateway's form that the broker does not know, and one of another form.
  EXPECT_EQ(c->Get(("/jobs/g" + std::string(32, '0')).c_str())->status, 404);
  EXPECT_EQ(c->Get("/jobs/c1234-1")->status, 404);
}

TEST(GatewayAccess, BrokerDownIs503NotAHang) {
  ECGQ_REQUIRE_BINARIES("ecgq-gateway");
  GatewayProcess gw("tcp://127.0.0.1:" + std::to_string(free_port()), {"--broker-timeout", "2s"});
  ASSERT_TRUE(gw.ready) << gw.proc->stderr_text();
  auto c = gw.client();
  auto h = c->Get("/health");
  EXPECT_EQ(h->status, 503);
  EXPECT_NE(body_json(h)["reason"].get<std::string>().find("mmi.status"), std::string::npos);
  const auto t0 = std::chrono::steady_clock::now();
  auto r = c->Post("/predict", samples_json(5000), "application/json");
  EXPECT_EQ(r->status, 503) << r->body;
  EXPECT_EQ(body_json(r)["error"]["code"], "broker_unreachable");
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 15s);
}

TEST(GatewayAccess, SigtermWithRequestsWaitingExitsZero) {
  ECGQ_REQUIRE_BINARIES("ecgq-broker", "ecgq-gateway");
  Broker broker({"--ecgq-services", "ecg-fm,idle"});
  ASSERT_TRUE(broker.ready) << broker.diagnostics();
  GatewayProcess gw(broker.endpoint, {"--service", "idle"});
  ASSERT_TRUE(gw.ready) << gw.proc->stderr_text();
  auto c = gw.client();
  ASSERT_EQ(c->Post("/predict?async=1", samples_json(5000), "application/json")->status, 202);
  // A synchronous request waits for a worker that never comes when the gateway is stopped.
  int status = 0;
  std::string code;
  std::thread waiting([&] {
    auto r = gw.client()->Post("/predict", samples_json(5000), "application/json");
    status = r ? r->status : -1;
    const auto j = body_json(r);
    if (j.is_object() && j.contains("error") && j["error"].is_object())
      code = j["error"].value("code", "");
  });
  ASSERT_TRUE(wait_until(
      [&] {
        const auto h = body_json(c->Get("/health"));
        return h.is_object() && h["gateway"].is_object() &&
               h["gateway"].value("jobs_in_flight", 0) == 2;
      },
      10s));
  gw.proc->signal(SIGTERM);
  EXPECT_EQ(gw.proc->wait(10s), 0) << gw.proc->stderr_text();
  waiting.join();
  // The waiting request was answered, not dropped.
  EXPECT_EQ(status, 503) << gw.proc->stderr_text();
  EXPECT_EQ(code, "shutting_down");
  EXPECT_NE(gw.proc->stderr_text().find("event=exit code=0"), std::string::npos);
}

TEST(GatewayLimits, OversizedUploadIsRefusedBeforeItsBodyArrives) {
  ECGQ_REQUIRE_BINARIES("ecgq-gateway");
  GatewayProcess gw("tcp://127.0.0.1:1", {"--max-body-bytes", "1MiB"});
  ASSERT_TRUE(gw.ready) << gw.proc->stderr_text();
  const int fd = tcp_connect(gw.port);
  ASSERT_GE(fd, 0);
  send_raw(fd,
           "POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
           "Content-Length: 104857600\r\n\r\n{\"samples\":");
  const std::string answer = recv_all(fd, 5000ms);
  ::close(fd);
  EXPECT_EQ(answer.rfind("HTTP/1.1 413", 0), 0u) << answer;
  EXPECT_NE(answer.find("body_too_large"), std::string::npos);
  // Expect: 100-continue (curl, for uploads over 1 MB): 100 first, then the answer to the body.
  const int cont = tcp_connect(gw.port);
  const std::string body = "{\"samples\": [[1, 2]]}";
  send_raw(cont,
           "POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
           "Expect: 100-continue\r\nContent-Length: " +
               std::to_string(body.size()) + "\r\n\r\n");
  EXPECT_EQ(recv_all(cont, 1000ms).rfind("HTTP/1.1 100 Continue", 0), 0u);
  send_raw(cont, body);
  const std::string after = recv_all(cont, 2000ms);
  EXPECT_EQ(after.rfind("HTTP/1.1 400", 0), 0u) << after;
  EXPECT_NE(after.find("\"field\":\"fs\""), std::string::npos) << after;
  ::close(cont);
  // Chunked bodies have no length up front: the limit holds while reading.
  httplib::Client c("127.0.0.1", gw.port);
  auto chunked = c.Post(
      "/predict", 2 << 20,
      [](size_t offset, size_t length, httplib::DataSink& sink) {
        std::string block(std::min<size_t>(length, 65536), ' ');
        sink.write(block.data(), block.size());
        return true;
      },
      "application/json");
  EXPECT_TRUE(!chunked || chunked->status == 413);
}

TEST(GatewayLimits, BrokenClientsGetAnAnswerOrAClosedConnection) {
  ECGQ_REQUIRE_BINARIES("ecgq-gateway");
  GatewayProcess gw("tcp://127.0.0.1:1", {"--body-timeout", "1s", "--header-timeout", "1s"});
  ASSERT_TRUE(gw.ready) << gw.proc->stderr_text();
  // Garbage instead of a request line.
  int fd = tcp_connect(gw.port);
  send_raw(fd, "\x16\x03\x01 hello\r\n\r\n");
  EXPECT_EQ(recv_all(fd, 3000ms).rfind("HTTP/1.1 400", 0), 0u);
  ::close(fd);
  // A half-sent upload whose client goes away, and one that stalls: closed after body_timeout.
  fd = tcp_connect(gw.port);
  send_raw(fd,
           "POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
           "Content-Length: 1000\r\n\r\n{\"sam");
  ::close(fd);
  fd = tcp_connect(gw.port);
  send_raw(fd,
           "POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
           "Content-Length: 1000\r\n\r\n{\"sam");
  auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(recv_all(fd, 5000ms), "");  // closed after body_timeout
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 4s);
  ::close(fd);
  // Headers that never end: the connection is closed after header_timeout.
  fd = tcp_connect(gw.port);
  send_raw(fd, "GET /health HTTP/1.1\r\nHost: x\r\n");
  t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(recv_all(fd, 5000ms), "");
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 4s);
  ::close(fd);
  // Oversized headers: 431.
  fd = tcp_connect(gw.port);
  send_raw(fd, "GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(40000, 'a') + "\r\n\r\n");
  EXPECT_EQ(recv_all(fd, 3000ms).rfind("HTTP/1.1 431", 0), 0u);
  ::close(fd);
  // Made-up methods are refused and counted under one label, whatever their number.
  for (int i = 0; i < 20; ++i) {
    fd = tcp_connect(gw.port);
    send_raw(fd, "BREW" + std::to_string(i) +
                     " /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    EXPECT_EQ(recv_all(fd, 2000ms).rfind("HTTP/1.1 405", 0), 0u);
    ::close(fd);
  }
  // Still serving.
  httplib::Client c("127.0.0.1", gw.port);
  EXPECT_EQ(c.Get("/v2/health/live")->status, 200);
  const std::string metrics = c.Get("/metrics")->body;
  EXPECT_NE(metrics.find("method=\"OTHER\",code=\"405\"} 20"), std::string::npos) << metrics;
  EXPECT_EQ(metrics.find("BREW"), std::string::npos);
  EXPECT_TRUE(gw.proc->running());
}

TEST(GatewayLimits, TenThousandIdleConnectionsStayBounded) {
  ECGQ_REQUIRE_BINARIES("ecgq-gateway");
  rlimit rl{};
  ::getrlimit(RLIMIT_NOFILE, &rl);
  rl.rlim_cur = rl.rlim_max;
  ::setrlimit(RLIMIT_NOFILE, &rl);
  if (rl.rlim_cur < 10500) GTEST_SKIP() << "needs 10,500 descriptors, have " << rl.rlim_cur;
  GatewayProcess gw("tcp://127.0.0.1:1", {"--max-connections", "2000", "--header-timeout", "3s"});
  ASSERT_TRUE(gw.ready) << gw.proc->stderr_text();
  const int64_t rss_before = proc_status_kb(gw.proc->pid(), "VmRSS");
  std::vector<int> fds;
  for (int i = 0; i < 10000; ++i) {
    const int fd = tcp_connect(gw.port);
    if (fd >= 0) fds.push_back(fd);
  }
  EXPECT_GT(fds.size(), 9000u);
  std::this_thread::sleep_for(500ms);
  const int64_t rss_during = proc_status_kb(gw.proc->pid(), "VmRSS");
  EXPECT_TRUE(gw.proc->running());
  // Memory stays bounded by max_connections: well under 100 MB more than idle.
  EXPECT_LT(rss_during - rss_before, 100 * 1024) << rss_before << " kB -> " << rss_during << " kB";
  // Connections over the bound were answered 503 and closed.
  const std::string refused = recv_all(fds.back(), 2000ms);
  EXPECT_EQ(refused.rfind("HTTP/1.1 503", 0), 0u) << refused;
  // The idle ones are closed after header_timeout, and the gateway serves again.
  httplib::Client c("127.0.0.1", gw.port);
  EXPECT_TRUE(wait_until(
      [&] {
        auto r = c.Get("/v2/health/live");
        return r && r->status == 200;
      },
      20s));
  for (int fd : fds) ::close(fd);
  auto metrics = c.Get("/metrics");
  ASSERT_TRUE(metrics);
  EXPECT_NE(metrics->body.find("ecgq_gateway_http_connections_refused_total"), std::string::npos);
}

// 1,000 slow uploads held open do not stop /health from answering. How long it takes under them
// is a figure for bench/gateway_bench.py (docs/gateway.md), not a timed assertion here.
TEST(GatewayLimits, ThousandSlowUploadsDoNotStopHealth) {
  ECGQ_REQUIRE_BINARIES("ecgq-gateway", "bench_slow_clients");
  GatewayProcess gw("tcp://127.0.0.1:1");
  ASSERT_TRUE(gw.ready) << gw.proc->stderr_text();
  // /health answers 503 here (no broker) and that is still an answer; the probe times it.
  auto r = run_command({bin("bench_slow_clients"), "127.0.0.1", std::to_string(gw.port), "1000",
                        "5", "/predict", "Content-Type: application/json"},
                       60s);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto j = client::Json::parse(r.out, nullptr, false);
  ASSERT_FALSE(j.is_discarded()) << r.out;
  EXPECT_EQ(j["slow_connections"], 1000);
  EXPECT_EQ(j["failures"], 0) << r.out;
  std::cout << "slow uploads: " << r.out;
}

}  // namespace
}  // namespace ecgq::test
