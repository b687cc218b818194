// A real Prometheus server (Debian `prometheus`) on 127.0.0.1 scrapes the gateway's /metrics
// (with a bearer token) and the broker's (--metrics-bind); its HTTP query API must return the
// counts this test produced, and `promtool check metrics` must pass on both endpoints. Skips
// with a message when prometheus is not installed (scripts/install-deps installs it).
#include "tests/test_gateway_support.hpp"

namespace ecgq::test {
namespace {

const std::string kToken = "prometheus-0123456789abcdef";

// The single value of an instant query, or -1 while there is none.
double query_value(httplib::Client& prom, const std::string& query) {
  auto r = prom.Get("/api/v1/query", httplib::Params{{"query", query}}, httplib::Headers{});
  auto j = body_json(r);
  if (!j.is_object() || j.value("status", "") != "success") return -1;
  const auto& result = j["data"]["result"];
  if (!result.is_array() || result.size() != 1) return -1;
  return std::stod(result[0]["value"][1].get<std::string>());
}

// The broker's view of the test's jobs: 3 answered ok (the malformed one never reached it); the
// same record three times, so the worker ran it once (its phases observed once) and the result
// cache answered twice; the worker counted by state; its heartbeat's memory.
void expect_broker_series(httplib::Client& p) {
  ASSERT_TRUE(wait_until([&] { return query_value(p, "up{job=\"ecgq-broker\"}") == 1; }, 30s));
  const std::string broker_ok = "ecgq_jobs_total{service=\"ecg-fm\",outcome=\"ok\"}";
  EXPECT_TRUE(wait_until([&] { return query_value(p, broker_ok) == 3; }, 30s))
      << query_value(p, broker_ok);
  EXPECT_EQ(query_value(p, "ecgq_job_phase_seconds_count{service=\"ecg-fm\",phase=\"infer\"}"), 1);
  EXPECT_EQ(query_value(p, "ecgq_result_cache_hits_total"), 2);
  EXPECT_EQ(query_value(p, "sum(ecgq_workers{service=\"ecg-fm\"})"), 1);
  EXPECT_EQ(query_value(p, "ecgq_queue_depth{service=\"ecg-fm\"}"), 0);
  EXPECT_GT(query_value(p, "ecgq_worker_rss_bytes{service=\"ecg-fm\"}"), 0);
}

// `promtool check metrics` accepts each endpoint's exposition (name -> port).
void expect_promtool_accepts(TempDir& dir, const std::vector<std::pair<std::string, int>>& ports,
                             const httplib::Headers& auth) {
  for (const auto& [name, port] : ports) {
    httplib::Client m("127.0.0.1", port);
    auto text = m.Get("/metrics", auth);
    ASSERT_TRUE(text && text->status == 200) << name;
    {
      std::ofstream f(dir.file(name + ".txt"));
      f << text->body;
    }
    auto check =
        run_command({"/bin/sh", "-c", "promtool check metrics < " + dir.file(name + ".txt")}, 30s);
    EXPECT_EQ(check.exit_code, 0) << name << ": " << check.out << check.err;
  }
}

TEST(GatewayPrometheus, ScrapedCountsMatchTheRequestsMade) {
  ECGQ_REQUIRE_BINARIES("ecgq-broker", "ecgq-worker", "ecgq-gateway");
  if (!std::filesystem::exists("/usr/bin/prometheus"))
    GTEST_SKIP() << "prometheus is not installed (scripts/install-deps installs it)";
  TempDir dir;
  {
    std::ofstream f(dir.file("tokens"));
    f << "prometheus " << kToken << "\n";
  }
  const int broker_metrics_port = free_port();
  Broker broker({"--metrics-bind", "127.0.0.1:" + std::to_string(broker_metrics_port)});
  ASSERT_TRUE(broker.ready) << broker.diagnostics();
  auto worker = start_demo_worker(broker.endpoint, "prom-w1");
  GatewayProcess gw(broker.endpoint, {"--tokens", dir.file("tokens")});
  ASSERT_TRUE(gw.ready) << gw.proc->stderr_text();
  auto c = gw.client();
  const httplib::Headers auth{{"Authorization", "Bearer " + kToken}};
  ASSERT_TRUE(wait_until([&] { return c->Get("/health")->status == 200; }, 60s));
  for (int i = 0; i < 7; ++i) EXPECT_EQ(c->Get("/info", auth)->status, 200);
  for (int i = 0; i < 3; ++i)
    EXPECT_EQ(c->Post("/predict", auth, samples_json(5000), "application/json")->status, 200);
  EXPECT_EQ(c->Post("/predict", auth, "{", "application/json")->status, 400);

  const int prom_port = free_port();
  {
    std::ofstream f(dir.file("prometheus.yml"));
    f << "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
         "scrape_configs:\n  - job_name: ecgq-gateway\n    scrape_interval: 1s\n"
         "    authorization:\n      credentials: "
      << kToken
      << "\n"
         "    static_configs:\n      - targets: ['127.0.0.1:"
      << gw.port
      << "']\n"
         "  - job_name: ecgq-broker\n    scrape_interval: 1s\n"
         "    static_configs:\n      - targets: ['127.0.0.1:"
      << broker_metrics_port << "']\n";
  }
  ChildProcess prom({"/usr/bin/prometheus", "--config.file=" + dir.file("prometheus.yml"),
                     "--storage.tsdb.path=" + dir.file("data"),
                     "--web.listen-address=127.0.0.1:" + std::to_string(prom_port)});
  httplib::Client p("127.0.0.1", prom_port);
  p.set_read_timeout(10, 0);
  ASSERT_TRUE(wait_until([&] { return query_value(p, "up{job=\"ecgq-gateway\"}") == 1; }, 60s))
      << prom.stderr_text();
  const std::string info = "ecgq_gateway_http_requests_total{endpoint=\"/info\",code=\"200\"}";
  EXPECT_TRUE(wait_until([&] { return query_value(p, info) == 7; }, 30s)) << query_value(p, info);
  EXPECT_EQ(
      query_value(p, "sum(ecgq_gateway_http_requests_total{endpoint=\"/predict\",code=\"200\"})"),
      3);
  EXPECT_EQ(query_value(p, "ecgq_gateway_http_requests_total{endpoint=\"/predict\",code=\"400\"}"),
            1);
  EXPECT_EQ(query_value(p, "ecgq_gateway_jobs_total{outcome=\"ok\"}"), 3);
  EXPECT_EQ(
      query_value(p, "ecgq_gateway_http_request_duration_seconds_count{endpoint=\"/predict\"}"), 4);
  EXPECT_EQ(query_value(p, "ecgq_gateway_broker_up"), 1);
  expect_broker_series(p);
  expect_promtool_accepts(dir, {{"broker", broker_metrics_port}, {"gateway", gw.port}}, auth);
  // A histogram query works over the scraped buckets.
  EXPECT_GT(
      query_value(p,
                  "histogram_quantile(0.5, sum by (le) "
                  "(ecgq_gateway_http_request_duration_seconds_bucket{endpoint=\"/predict\"}))"),
      0);
}

}  // namespace
}  // namespace ecgq::test
