// The gateway's pieces without sockets: multipart, forms, routes, tokens, metrics text, the Open
// Inference Protocol codec, the job store, the settings file and the OpenAPI document's coverage
// of the route table.
#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include <cstring>
#include <fstream>
#include <set>

#include "gateway/config.hpp"
#include "gateway/gateway.hpp"
#include "gateway/http_errors.hpp"
#include "gateway/job_store.hpp"
#include "gateway/metrics.hpp"
#include "gateway/multipart.hpp"
#include "gateway/oip.hpp"
#include "gateway/openapi.hpp"
#include "gateway/predict_input.hpp"
#include "gateway/router.hpp"
#include "gateway/tokens.hpp"
#include "tests/support/process.hpp"

namespace ecgq::gateway {
namespace {

using test::TempDir;

const std::string kBody =
    "preamble\r\n--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.hea\"\r\n"
    "Content-Type: text/plain\r\n\r\nhello\r\nworld\r\n--XyZ\r\n"
    "Content-Disposition: form-data; name=\"fs\"\r\n\r\n250\r\n--XyZ--\r\n";

TEST(Multipart, PartsNamesFilesAndData) {
  auto b = multipart_boundary("multipart/form-data; boundary=XyZ");
  ASSERT_TRUE(b.ok());
  auto parts = parse_multipart(kBody, *b);
  ASSERT_TRUE(parts.ok()) << parts.status().to_string();
  ASSERT_EQ(parts->size(), 2u);
  EXPECT_EQ((*parts)[0].name, "file");
  EXPECT_EQ((*parts)[0].filename, "a.hea");
  EXPECT_EQ((*parts)[0].content_type, "text/plain");
  EXPECT_EQ((*parts)[0].data, "hello\r\nworld");
  EXPECT_EQ((*parts)[1].name, "fs");
  EXPECT_EQ((*parts)[1].data, "250");
}

TEST(Multipart, QuotedBoundaryAndMalformedBodies) {
  EXPECT_EQ(*multipart_boundary("multipart/form-data; boundary=\"a b\""), "a b");
  EXPECT_EQ(multipart_boundary("multipart/form-data").status().code(), "bad_request");
  EXPECT_EQ(multipart_boundary("text/plain").status().code(), "unsupported_media_type");
  // Truncated: no closing delimiter.
  auto t = parse_multipart(kBody.substr(0, kBody.size() - 11), "XyZ");
  EXPECT_EQ(t.status().code(), "bad_request");
  EXPECT_NE(t.status().message().find("truncated"), std::string::npos);
  EXPECT_FALSE(parse_multipart("no boundary here", "XyZ").ok());
  EXPECT_FALSE(parse_multipart("--XyZ\r\nX-No-Disposition: 1\r\n\r\nx\r\n--XyZ--", "XyZ").ok());
  EXPECT_FALSE(parse_multipart("--XyZ\r\nContent-Disposition: form-data; name=\"a\"", "XyZ").ok());
  std::string many;
  for (int i = 0; i < 70; ++i)
    many += "--XyZ\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nx\r\n";
  EXPECT_FALSE(parse_multipart(many + "--XyZ--", "XyZ").ok());
}

TEST(HttpMessage, TargetsAndForms) {
  HttpRequest r;
  r.target = "/predict?async=1&outputs=probs%2Cembedding&leads=I+II";
  parse_target(r);
  EXPECT_EQ(r.path, "/predict");
  EXPECT_EQ(r.query_value("async"), "1");
  EXPECT_EQ(r.query_value("outputs"), "probs,embedding");
  EXPECT_EQ(r.query_value("leads"), "I II");
  std::string out;
  EXPECT_FALSE(url_decode("%4", out));
  EXPECT_FALSE(url_decode("%zz", out));
}

TEST(Router, PatternsMethodsAndParameters) {
  Router router;
  router.add({"GET", "/jobs/{id}", false, {}, nullptr});
  router.add({"DELETE", "/jobs/{id}", false, {}, nullptr});
  router.add({"GET", "/health", true, {}, nullptr});
  auto m = router.match("GET", "/jobs/abc");
  ASSERT_NE(m.route, nullptr);
  EXPECT_EQ(m.params.at("id"), "abc");
  auto wrong = router.match("POST", "/jobs/abc");
  EXPECT_EQ(wrong.route, nullptr);
  EXPECT_EQ(wrong.allowed, (std::vector<std::string>{"GET", "DELETE"}));
  EXPECT_EQ(router.match("GET", "/jobs/").route, nullptr);
  EXPECT_EQ(router.match("GET", "/nope").route, nullptr);
  EXPECT_TRUE(router.match("GET", "/nope").allowed.empty());
}

TEST(Tokens, LoadAndAuthenticate) {
  TempDir dir;
  {
    std::ofstream f(dir.file("tokens"));
    f << "# comment\n\nalice 0123456789abcdef0123\nbob   fedcba9876543210fedc\n";
  }
  auto t = TokenTable::load(dir.file("tokens"));
  ASSERT_TRUE(t.ok()) << t.status().to_string();
  EXPECT_EQ(t->size(), 2u);
  EXPECT_EQ(t->authenticate("Bearer 0123456789abcdef0123").value_or(""), "alice");
  EXPECT_EQ(t->authenticate("bearer fedcba9876543210fedc").value_or(""), "bob");
  EXPECT_FALSE(t->authenticate("Bearer 0123456789abcdef0124"));
  EXPECT_FALSE(t->authenticate("Basic 0123456789abcdef0123"));
  EXPECT_FALSE(t->authenticate(""));
  {
    std::ofstream f(dir.file("short"));
    f << "carol short\n";
  }
  EXPECT_EQ(TokenTable::load(dir.file("short")).status().code(), "bad_config");
  {
    std::ofstream f(dir.file("dup"));
    f << "a 0123456789abcdef0123\na fedcba9876543210fedc\n";
  }
  EXPECT_FALSE(TokenTable::load(dir.file("dup")).ok());
  EXPECT_FALSE(TokenTable::load(dir.file("missing")).ok());
}

TEST(Metrics, ExpositionFormat) {
  Metrics m;
  m.observe_request("/predict", "POST", 200, 0.02);
  m.observe_request("/predict", "POST", 200, 3.0);
  m.observe_request("/health", "GET", 503, 0.0001);
  m.observe_job("ok");
  const std::string text = m.render({{"ecgq_gateway_jobs_in_flight", "Jobs.", "gauge", 2}});
  EXPECT_NE(text.find("# TYPE ecgq_gateway_http_requests_total counter"), std::string::npos);
  EXPECT_NE(text.find("ecgq_gateway_http_requests_total{endpoint=\"/predict\",method=\"POST\","
                      "code=\"200\"} 2"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("ecgq_gateway_http_request_duration_seconds_bucket{endpoint=\"/predict\","
                      "le=\"0.025\"} 1"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("ecgq_gateway_http_request_duration_seconds_bucket{endpoint=\"/predict\","
                      "le=\"+Inf\"} 2"),
            std::string::npos);
  EXPECT_NE(text.find("ecgq_gateway_http_request_duration_seconds_count{endpoint=\"/predict\"} 2"),
            std::string::npos);
  EXPECT_NE(text.find("ecgq_gateway_jobs_total{outcome=\"ok\"} 1"), std::string::npos);
  EXPECT_NE(text.find("ecgq_gateway_jobs_in_flight 2"), std::string::npos);
  EXPECT_EQ(escape_label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
}

TEST(Oip, InferRequestsAsTheSpecWritesThem) {
  // Flat FP32 data, parameters at request level.
  std::string flat = "[";
  for (int i = 0; i < 12 * 3000; ++i) flat += (i ? "," : "") + std::to_string(i % 7);
  flat += "]";
  auto r = oip::parse_infer(R"({"id":"42","parameters":{"fs":500},"inputs":[{"name":"ecg",)"
                            R"("shape":[12,3000],"datatype":"FP32","data":)" +
                            flat + "}]}");
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(r->id, "42");
  EXPECT_EQ(r->job.ecg.shape, (std::vector<int64_t>{12, 3000}));
  EXPECT_EQ(r->job.fs, 500);
  EXPECT_EQ(r->outputs, oip::kDefaultOutputs);
  // Nested INT16 with gain and leads at input level, one output asked.
  auto i16 = oip::parse_infer(
      R"({"inputs":[{"name":"ecg","shape":[2,3],"datatype":"INT16","data":[[1,2,3],[4,5,6]],)"
      R"("parameters":{"fs":250,"leads":"I, II","gain":1000}}],"outputs":[{"name":"probs"}]})");
  ASSERT_TRUE(i16.ok()) << i16.status().to_string();
  EXPECT_EQ(i16->job.leads, (std::vector<std::string>{"I", "II"}));
  EXPECT_EQ(i16->outputs, (std::vector<std::string>{"probs"}));
  const float* mv = reinterpret_cast<const float*>(i16->job.ecg.data.data());
  EXPECT_FLOAT_EQ(mv[5], 0.006f);
  // Errors name the field.
  auto field = [](const std::string& body) { return oip::parse_infer(body).status().field(); };
  EXPECT_EQ(field("{"), "body");
  EXPECT_EQ(field(R"({"inputs":[{"name":"x","shape":[1,1],"datatype":"FP32","data":[1]}]})"),
            "inputs[0].name");
  EXPECT_EQ(field(R"({"inputs":[{"name":"ecg","shape":[2,2],"datatype":"FP32","data":[1]}],)"
                  R"("parameters":{"fs":500}})"),
            "inputs[0].data");
  EXPECT_EQ(field(R"({"inputs":[{"name":"ecg","shape":[1,1],"datatype":"FP64","data":[1]}]})"),
            "inputs[0].datatype");
  EXPECT_EQ(field(R"({"inputs":[{"name":"ecg","shape":[1,1],"datatype":"INT16","data":[1]}],)"
                  R"("parameters":{"fs":500}})"),
            "gain");
  EXPECT_EQ(field(R"({"inputs":[{"name":"ecg","shape":[1,1],"datatype":"FP32","data":[1]}]})"),
            "fs");
  EXPECT_EQ(field(R"({"inputs":[{"name":"ecg","shape":[1,1],"datatype":"FP32","data":[1]}],)"
                  R"("parameters":{"fs":500,"leads":"I"},"outputs":[{"name":"nope"}]})"),
            "outputs");
}

TEST(Oip, ResponseTensors) {
  schema::Result r;
  r.id = "g1";
  r.labels = {"a", "b"};
  r.probs = {0.25f, 0.5f};
  r.embedding = {1, 2, 3};
  const auto j = oip::infer_response("ecg-fm", "42", r, {"probs", "embedding"});
  EXPECT_EQ(j["model_name"], "ecg-fm");
  EXPECT_EQ(j["id"], "42");
  ASSERT_EQ(j["outputs"].size(), 2u);
  EXPECT_EQ(j["outputs"][0]["name"], "probs");
  EXPECT_EQ(j["outputs"][0]["datatype"], "FP32");
  EXPECT_EQ(j["outputs"][0]["shape"], client::Json::array({2}));
  EXPECT_EQ(j["outputs"][0]["parameters"]["labels"], "a,b");
  EXPECT_EQ(j["outputs"][1]["shape"], client::Json::array({3}));
  const auto meta = oip::model_metadata("ecg-fm", {"a", "b"}, -1);
  EXPECT_EQ(meta["inputs"][0]["name"], "ecg");
  EXPECT_EQ(meta["outputs"][0]["shape"], client::Json::array({2}));
}

TEST(PredictFields, FieldsAndSamples) {
  PredictFields f;
  EXPECT_TRUE(set_field(f, "outputs", "probs, embedding").ok());
  EXPECT_EQ(f.outputs, (std::vector<std::string>{"probs", "embedding"}));
  EXPECT_EQ(set_field(f, "outputs", "probs,nope").code(), "unsupported_output");
  EXPECT_EQ(set_field(f, "fs", "abc").field(), "fs");
  EXPECT_EQ(set_field(f, "fs", "-1").field(), "fs");
  EXPECT_TRUE(set_field(f, "deadline", "2s").ok());
  EXPECT_EQ(*f.deadline_ms, 2000);
  EXPECT_EQ(set_field(f, "deadline", "2").field(), "deadline");
  EXPECT_EQ(set_field(f, "colour", "red").field(), "colour");
  EXPECT_EQ(job_from_samples(std::vector<float>(6, 0.f), 2, 3, 500, {}).status().field(), "leads");
  EXPECT_TRUE(job_from_samples(std::vector<float>(24, 0.f), 12, 2, 500, {}).ok());
}

TEST(JobStore, ScopeStatesAndBounds) {
  JobStore store(2, Millis(50));
  EXPECT_TRUE(store.add("a", "alice"));
  EXPECT_TRUE(store.add("b", "bob"));
  EXPECT_FALSE(store.add("c", "carol"));  // full of unfinished jobs
  store.progress("a", "running");
  EXPECT_EQ(store.get("a")->state, "running");
  store.finish("a", true, 200, "{}");
  ASSERT_TRUE(store.get("a"));
  EXPECT_EQ(store.get("a")->state, "done");
  EXPECT_EQ(store.get("a")->owner, "alice");
  EXPECT_TRUE(store.add("c", "carol"));  // the finished one made room
  EXPECT_FALSE(store.get("a"));
}

TEST(HttpErrors, StatusesAndRetryAfter) {
  EXPECT_EQ(http_status("too_short"), 400);
  EXPECT_EQ(http_status("queue_full"), 429);
  EXPECT_EQ(http_status("no_worker"), 503);
  EXPECT_EQ(http_status("deadline_exceeded"), 504);
  EXPECT_EQ(http_status("message_too_large"), 413);
  auto r = error_response("queue_full", "full", "", 1500, "g1");
  EXPECT_EQ(r.status, 429);
  ASSERT_EQ(r.headers.size(), 1u);
  EXPECT_EQ(r.headers[0], (std::pair<std::string, std::string>{"Retry-After", "2"}));
  auto body = client::Json::parse(r.body);
  EXPECT_EQ(body["error"]["code"], "queue_full");
  EXPECT_EQ(body["id"], "g1");
}

TEST(GatewayConfig, ShippedFileListsEverySettingAtItsDefault) {
  Settings declared;
  declare_settings(declared);
  const YAML::Node file = YAML::LoadFile(test::source("config/gateway.yaml"));
  std::set<std::string> in_file;
  for (const auto& item : file) in_file.insert(item.first.as<std::string>());
  EXPECT_EQ(in_file, std::set<std::string>(declared.keys().begin(), declared.keys().end()));
  Settings loaded;
  declare_settings(loaded);
  ASSERT_TRUE(loaded.merge_yaml_file(test::source("config/gateway.yaml")).ok());
  for (const auto& key : declared.keys()) EXPECT_EQ(loaded.text(key), declared.text(key)) << key;
  auto config = load_config(loaded);
  ASSERT_TRUE(config.ok()) << config.status().to_string();
  EXPECT_EQ(config->port, 8080);
  EXPECT_TRUE(config->loopback());
  ASSERT_TRUE(loaded.set("bind", "0.0.0.0:99999", "test").ok());
  EXPECT_EQ(load_config(loaded).status().field(), "bind");
}

TEST(OpenApi, DocumentsExactlyTheRoutes) {
  Gateway gw(GatewayConfig{}, TokenTable{});
  const auto doc = openapi_document("ecg-fm");
  std::set<std::string> documented, routed;
  for (const auto& [path, ops] : doc["paths"].items())
    for (const auto& [method, op] : ops.items()) documented.insert(method + " " + path);
  for (const auto& r : gw.router().routes()) {
    std::string m = r.method;
    for (char& c : m) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    routed.insert(m + " " + r.pattern);
    // Open routes are documented without security.
    const auto& op = doc["paths"][r.pattern][m];
    EXPECT_EQ(op.contains("security") && op["security"].empty(), r.open) << r.pattern;
  }
  EXPECT_EQ(documented, routed);
  EXPECT_EQ(doc["openapi"].get<std::string>().substr(0, 2), "3.");
}

}  // namespace
}  // namespace ecgq::gateway
