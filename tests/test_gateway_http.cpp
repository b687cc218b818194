// ecgq-gateway end to end: a real broker, a worker on the demo model and the gateway on
// 127.0.0.1, every endpoint of the ECG-FM API over HTTP, each error status, async jobs and the
// OpenAPI document checked against the answers.
#include <mutex>
#include <set>
#include <thread>

#include "tests/test_gateway_support.hpp"

namespace ecgq::test {
namespace {

// One broker, one worker and one gateway shared by the tests of this file.
class GatewayHttp : public GatewaySuite<GatewayHttp> {
 public:
  static constexpr const char* kWorkerId = "gw-w1";
};

// The JSON line `ecgq submit` prints for `path` on the same broker.
client::Json submit_line(const std::string& broker, const std::string& path) {
  auto r = run_command({bin("ecgq"), "--broker", broker, "submit", path}, 60s);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  return client::Json::parse(r.out.substr(0, r.out.find('\n')), nullptr, false);
}

void expect_same_probs(const client::Json& a, const client::Json& b) {
  ASSERT_TRUE(a.contains("probs") && b.contains("probs")) << a.dump() << "\n" << b.dump();
  ASSERT_EQ(a["probs"].size(), b["probs"].size());
  for (const auto& [label, p] : a["probs"].items())
    EXPECT_NEAR(p.get<double>(), b["probs"][label].get<double>(), 1e-6) << label;
}

TEST_F(GatewayHttp, RootHealthAndInfo) {
  auto c = gateway_->client();
  auto root = body_json(c->Get("/"));
  EXPECT_EQ(root["name"], "ecgq-gateway");
  EXPECT_EQ(root["model"]["kind"], "ecgfm");
  EXPECT_EQ(root["model"]["sha256"].get<std::string>().size(), 64u);
  EXPECT_EQ(root["links"]["predict"], "/predict");
  auto health = c->Get("/health");
  ASSERT_TRUE(health);
  EXPECT_EQ(health->status, 200);
  auto h = body_json(health);
  EXPECT_EQ(h["status"], "ok");
  EXPECT_EQ(h["workers"]["warm"].get<int>() + h["workers"]["busy"].get<int>(), 1);
  EXPECT_TRUE(h["model_loaded"].get<bool>());
  EXPECT_TRUE(h["queue"].contains("queued"));
  EXPECT_FALSE(health->get_header_value("X-Request-Id").empty());
  // A request id the client chose comes back.
  auto mine = c->Get("/health", httplib::Headers{{"X-Request-Id", "probe-1"}});
  EXPECT_EQ(mine->get_header_value("X-Request-Id"), "probe-1");
  // Labels are known once a result was seen.
  c->Post("/predict", samples_json(5000), "application/json");
  auto info = body_json(c->Get("/info"));
  EXPECT_EQ(info["labels"].size(), 17u);
  EXPECT_EQ(info["input"]["fs_hz"], 500);
  EXPECT_EQ(info["input"]["leads"].size(), 12u);
}

TEST_F(GatewayHttp, PredictEveryFormatAnswersWhatEcgqSubmitPrints) {
  TempDir dir;
  write_csv_record(dir.file("rec.csv"), 5000);
  write_npy_record(dir.file("rec.npy"), 5000);
  struct Case {
    std::vector<std::string> files;  // uploaded; the first is the record ecgq submit reads
  };
  const std::vector<Case> cases = {
      {{source("data/ecg/1.hea"), source("data/ecg/1.dat")}},              // WFDB
      {{source("data/ecg/HR06000.hea"), source("data/ecg/HR06000.mat")}},  // Challenge
      {{dir.file("rec.csv")}},                                             // CSV
      {{dir.file("rec.npy")}},                                             // .npy
      {{source("tests/data/clinical/dicom/pydicom_waveform_ecg.dcm")}},    // DICOM
      {{source("tests/data/clinical/philips-sierra-xml/sierra_1.03_HeartStartMRx_129DYPRG.XML")}}};
  auto c = gateway_->client();
  for (const auto& k : cases) {
    httplib::MultipartFormDataItems items;
    for (const auto& f : k.files) items.push_back(file_part(f));
    auto r = c->Post("/predict", items);
    ASSERT_TRUE(r);
    ASSERT_EQ(r->status, 200) << r->body;
    auto j = body_json(r);
    EXPECT_EQ(j["status"], "ok");
    EXPECT_EQ(j["path"], k.files[0].substr(k.files[0].rfind('/') + 1));
    EXPECT_EQ(j["id"], r->get_header_value("X-Job-Id"));
    EXPECT_EQ(j["probs"].size(), 17u);
    expect_same_probs(j, submit_line(broker_->endpoint, k.files[0]));
  }
  // JSON samples give what the same samples give as a .npy file.
  auto r = c->Post("/predict?outputs=probs,embedding", samples_json(5000), "application/json");
  ASSERT_EQ(r->status, 200) << r->body;
  auto j = body_json(r);
  EXPECT_EQ(j["path"], "");
  EXPECT_FALSE(j["embedding"].empty());
  expect_same_probs(j, submit_line(broker_->endpoint, dir.file("rec.npy")));
  // Form fields work like query fields.
  httplib::MultipartFormDataItems items = {file_part(dir.file("rec.npy")),
                                           {"outputs", "probs,logits", "", ""}};
  auto f = body_json(c->Post("/predict", items));
  EXPECT_TRUE(f.contains("logits")) << f.dump();
}

TEST_F(GatewayHttp, ErrorsHaveTheirCodeFieldAndStatus) {
  auto c = gateway_->client();
  struct Case {
    httplib::Result r;
    int status;
    std::string code;
    std::string field;
  };
  TempDir dir;
  const std::string boundary = "multipart/form-data; boundary=zz";
  std::vector<Case> cases;
  cases.push_back(
      {c->Post("/predict", "--zz\r\nContent-Disposition: form-data; name=\"file\"", boundary), 400,
       "bad_request", "body"});
  cases.push_back(
      {c->Post("/predict", "{\"samples\": [", "application/json"), 400, "bad_request", "body"});
  cases.push_back({c->Post("/predict", "{\"samples\": [[1,2]]}", "application/json"), 400,
                   "bad_request", "fs"});
  cases.push_back(
      {c->Post("/predict", "x", "text/plain"), 415, "unsupported_media_type", "content-type"});
  cases.push_back({c->Post("/predict?colour=red", samples_json(5000), "application/json"), 400,
                   "bad_request", "colour"});
  cases.push_back({c->Post("/predict?outputs=nope", samples_json(5000), "application/json"), 400,
                   "unsupported_output", "outputs"});
  // Worker-side input errors come back as 400 too: 2 s is shorter than one 5 s segment.
  cases.push_back(
      {c->Post("/predict", samples_json(1000), "application/json"), 400, "too_short", ""});
  httplib::MultipartFormDataItems no_dat = {file_part(source("data/ecg/1.hea"))};
  cases.push_back({c->Post("/predict", no_dat), 400, "not_found", "file"});
  // A header may only name files uploaded with it: never a file of the server.
  std::string evil = read_file(source("data/ecg/1.hea"));
  for (size_t p; (p = evil.find("1.dat")) != std::string::npos;) evil.replace(p, 5, "/etc/passwd");
  httplib::MultipartFormDataItems traversal = {{"file", evil, "1.hea", "text/plain"},
                                               file_part(source("data/ecg/1.dat"))};
  cases.push_back({c->Post("/predict", traversal), 400, "not_found", "file"});
  for (size_t p; (p = evil.find("/etc/passwd")) != std::string::npos;)
    evil.replace(p, 11, "../../1.dat");
  traversal[0].content = evil;
  cases.push_back({c->Post("/predict", traversal), 400, "not_found", "file"});
  httplib::MultipartFormDataItems bad_name = {
      {"file", "x", "../../etc/passwd", "application/octet-stream"}};
  cases.push_back({c->Post("/predict", bad_name), 400, "bad_request", "file"});
  cases.push_back({c->Get("/nowhere"), 404, "no_such_route", "path"});
  cases.push_back({c->Get("/jobs/gdoesnotexist"), 404, "no_such_job", "id"});
  for (auto& k : cases) {
    ASSERT_TRUE(k.r) << k.code;
    EXPECT_EQ(k.r->status, k.status) << k.r->body;
    auto j = body_json(k.r);
    EXPECT_EQ(j["error"]["code"], k.code) << k.r->body;
    if (!k.field.empty()) {
      EXPECT_EQ(j["error"]["field"], k.field) << k.r->body;
    }
    EXPECT_TRUE(j["error"].contains("message"));
  }
  auto wrong = c->Delete("/predict");
  EXPECT_EQ(wrong->status, 405);
  EXPECT_EQ(wrong->get_header_value("Allow"), "POST");
  // The gateway logs what happened, never the samples or the temp directory.
  const std::string log = gateway_->proc->stderr_text();
  EXPECT_EQ(log.find("ecgq-upload-"), std::string::npos);
  EXPECT_NE(log.find("route=/predict status=415"), std::string::npos);
}

TEST_F(GatewayHttp, ManyRequestsInFlightAtOnce) {
  // 48 clients at once, each a job on the broker; the worker batches them, none waits on another
  // HTTP thread.
  const std::string body = samples_json(5000);
  std::vector<std::thread> clients;
  std::mutex mutex;
  std::set<std::string> ids;
  int ok = 0;
  for (int i = 0; i < 48; ++i) {
    clients.emplace_back([&] {
      auto c = gateway_->client();
      auto r = c->Post("/predict", body, "application/json");
      std::lock_guard<std::mutex> lock(mutex);
      if (r && r->status == 200) {
        ++ok;
        ids.insert(r->get_header_value("X-Job-Id"));
      }
    });
  }
  for (auto& t : clients) t.join();
  EXPECT_EQ(ok, 48);
  EXPECT_EQ(ids.size(), 48u);
}

TEST_F(GatewayHttp, AsyncJobsAreFetchedById) {
  auto c = gateway_->client();
  auto r =
      c->Post("/predict?async=1&outputs=probs,embedding", samples_json(5000), "application/json");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 202) << r->body;
  const std::string location = r->get_header_value("Location");
  const auto accepted = body_json(r);
  EXPECT_EQ(location, "/jobs/" + accepted["id"].get<std::string>());
  EXPECT_EQ(accepted["id"].get<std::string>().size(), 33u);  // "g" + 128 bits in hex
  client::Json job;
  ASSERT_TRUE(wait_until(
      [&] {
        job = body_json(c->Get(location.c_str()));
        return job.value("state", "") == "done";
      },
      30s))
      << job.dump();
  EXPECT_EQ(job["http_status"], 200);
  EXPECT_EQ(job["result"]["id"], accepted["id"]);
  EXPECT_EQ(job["result"]["probs"].size(), 17u);
  EXPECT_FALSE(job["result"]["embedding"].empty());
  auto del = c->Delete(location.c_str());
  EXPECT_EQ(del->status, 202);
  EXPECT_EQ(body_json(del)["cancel"], "finished");
}

TEST_F(GatewayHttp, OpenApiDocumentMatchesTheAnswers) {
  auto c = gateway_->client();
  const auto doc = body_json(c->Get("/openapi.json"));
  ASSERT_TRUE(doc.contains("paths"));
  auto accepted = body_json(c->Post("/predict?async=1", samples_json(5000), "application/json"));
  const std::string job = "/jobs/" + accepted.value("id", "");
  struct Probe {
    std::string method, pattern, target, body, type;
  };
  const std::string infer =
      R"({"inputs":[{"name":"ecg","shape":[1,2],"datatype":"FP32","data":[1,2]}],)"
      R"("parameters":{"fs":500,"leads":"II"}})";
  const std::vector<Probe> probes = {
      {"get", "/", "/", "", ""},
      {"get", "/health", "/health", "", ""},
      {"get", "/info", "/info", "", ""},
      {"post", "/predict", "/predict", samples_json(5000), "application/json"},
      {"post", "/predict", "/predict", "{}", "application/json"},
      {"post", "/predict", "/predict", "x", "text/plain"},
      {"post", "/predict", "/predict?async=1", samples_json(5000), "application/json"},
      {"get", "/jobs/{id}", job, "", ""},
      {"get", "/jobs/{id}", "/jobs/gnope", "", ""},
      {"delete", "/jobs/{id}", job, "", ""},
      {"get", "/metrics", "/metrics", "", ""},
      {"get", "/openapi.json", "/openapi.json", "", ""},
      {"get", "/ui", "/ui", "", ""},
      {"get", "/ui/records", "/ui/records", "", ""},
      {"post", "/ui/predict", "/ui/predict?record=1.hea", "", ""},
      {"post", "/ui/predict", "/ui/predict?record=../etc/passwd", "", ""},
      {"get", "/v2", "/v2", "", ""},
      {"get", "/v2/health/live", "/v2/health/live", "", ""},
      {"get", "/v2/health/ready", "/v2/health/ready", "", ""},
      {"get", "/v2/models/{model}", "/v2/models/ecg-fm", "", ""},
      {"get", "/v2/models/{model}", "/v2/models/other", "", ""},
      {"get", "/v2/models/{model}/ready", "/v2/models/ecg-fm/ready", "", ""},
      {"post", "/v2/models/{model}/infer", "/v2/models/ecg-fm/infer", infer, "application/json"},
      {"post", "/v2/models/{model}/infer", "/v2/models/ecg-fm/infer", "[]", "application/json"},
      {"get", "/v2/models/{model}/versions/{version}", "/v2/models/ecg-fm/versions/1", "", ""},
      {"get", "/v2/models/{model}/versions/{version}", "/v2/models/ecg-fm/versions/2", "", ""},
      {"get", "/v2/models/{model}/versions/{version}/ready", "/v2/models/ecg-fm/versions/1/ready",
       "", ""},
      {"post", "/v2/models/{model}/versions/{version}/infer", "/v2/models/ecg-fm/versions/1/infer",
       infer, "application/json"}};
  std::set<std::string> probed;
  TempDir dir;
  std::ofstream answers(dir.file("answers.jsonl"));
  for (const auto& p : probes) {
    httplib::Result r = p.method == "get"    ? c->Get(p.target.c_str())
                        : p.method == "post" ? c->Post(p.target.c_str(), p.body, p.type.c_str())
                                             : c->Delete(p.target.c_str());
    ASSERT_TRUE(r) << p.target;
    probed.insert(p.method + " " + p.pattern);
    answers << client::Json{{"method", p.method},
                            {"pattern", p.pattern},
                            {"status", r->status},
                            {"content_type", r->get_header_value("Content-Type")},
                            {"body", r->body}}
                   .dump()
            << "\n";
    const auto& op = doc["paths"][p.pattern][p.method];
    const std::string status = std::to_string(r->status);
    ASSERT_TRUE(op["responses"].contains(status))
        << p.method << " " << p.target << " answered " << status << ", not documented";
    const auto& documented = op["responses"][status];
    if (!documented.contains("content")) {
      EXPECT_TRUE(r->body.empty()) << p.target;
      continue;
    }
    const std::string type = documented["content"].begin().key();
    EXPECT_EQ(r->get_header_value("Content-Type").rfind(type, 0), 0u) << p.target;
    const auto& schema = documented["content"][type]["schema"];
    if (!schema.contains("$ref")) continue;
    const std::string name = schema["$ref"].get<std::string>().substr(21);  // #/components/schemas/
    const auto& component = doc["components"]["schemas"][name];
    const auto body = body_json(r);
    for (const auto& key : component.value("required", client::Json::array()))
      EXPECT_TRUE(body.contains(key.get<std::string>()))
          << p.target << " (" << status << ") lacks " << key << " of " << name;
  }
  // Every JSON answer validates against its schema (JSON Schema 2020-12, as OpenAPI 3.1 says).
  answers.close();
  {
    std::ofstream f(dir.file("openapi.json"));
    f << doc.dump();
  }
  auto check = run_command({"/usr/bin/python3", source("tests/gateway_openapi_check.py"),
                            dir.file("openapi.json"), dir.file("answers.jsonl")},
                           60s);
  EXPECT_EQ(check.exit_code, 0) << check.out << check.err;
  EXPECT_NE(check.out.find(" 0 problems"), std::string::npos) << check.out;
  std::cout << check.out;
  // Every documented operation was probed.
  for (const auto& [path, ops] : doc["paths"].items())
    for (const auto& [method, op] : ops.items())
      EXPECT_EQ(probed.count(method + " " + path), 1u) << method << " " << path;
}

TEST_F(GatewayHttp, MetricsCountRequestsAndPassPromtool) {
  auto c = gateway_->client();
  for (int i = 0; i < 3; ++i) c->Get("/info");
  auto r = c->Get("/metrics");
  ASSERT_EQ(r->status, 200);
  EXPECT_EQ(r->get_header_value("Content-Type").rfind("text/plain; version=0.0.4", 0), 0u);
  EXPECT_NE(r->body.find("ecgq_gateway_http_requests_total{endpoint=\"/info\",method=\"GET\","
                         "code=\"200\"}"),
            std::string::npos);
  EXPECT_NE(r->body.find("ecgq_gateway_http_request_duration_seconds_bucket"), std::string::npos);
  EXPECT_NE(r->body.find("ecgq_gateway_broker_up 1"), std::string::npos);
  if (!std::filesystem::exists("/usr/bin/promtool")) GTEST_SKIP() << "promtool not installed";
  TempDir dir;
  {
    std::ofstream f(dir.file("metrics.txt"));
    f << r->body;
  }
  auto check =
      run_command({"/bin/sh", "-c", "promtool check metrics < " + dir.file("metrics.txt")}, 30s);
  EXPECT_EQ(check.exit_code, 0) << check.out << check.err;
}

}  // namespace
}  // namespace ecgq::test
