// The Open Inference Protocol (KServe v2) endpoints of ecgq-gateway, with requests written as the
// published protocol writes them (REST/JSON): health, server and model metadata, inference with
// an FP32 or INT16 tensor, and the {"error": ...} bodies.
#include "tests/test_gateway_support.hpp"

namespace ecgq::test {
namespace {

class GatewayOip : public GatewaySuite<GatewayOip> {
 public:
  static constexpr const char* kWorkerId = "oip-w1";

 protected:
  // The synthetic record as a v2 "data" array, flat (row-major) or nested.
  static std::string tensor_data(int64_t samples, bool nested, double scale = 1.0) {
    const std::vector<float> v = synthetic_ecg(samples);
    std::string out = "[";
    for (int64_t l = 0; l < 12; ++l) {
      if (nested) out += (l ? ",[" : "[");
      for (int64_t t = 0; t < samples; ++t) {
        const double x = v[static_cast<size_t>(l * samples + t)] * scale;
        const bool first = t == 0 && (nested || l == 0);
        out += (first ? "" : ",") +
               (scale == 1.0 ? std::to_string(x) : std::to_string(std::lround(x)));
      }
      if (nested) out += "]";
    }
    return out + "]";
  }
};

// Checks a $response_output: name, shape, datatype and data of product(shape) numbers.
void expect_tensor(const client::Json& t, const std::string& name, size_t rank) {
  EXPECT_EQ(t["name"], name);
  EXPECT_EQ(t["datatype"], "FP32");
  ASSERT_EQ(t["shape"].size(), rank);
  int64_t n = 1;
  for (const auto& d : t["shape"]) n *= d.get<int64_t>();
  EXPECT_EQ(static_cast<int64_t>(t["data"].size()), n) << name;
}

TEST_F(GatewayOip, HealthAndMetadata) {
  auto c = gateway_->client();
  // "A 200 status code indicates true and a 4xx status code indicates false. The HTTP response
  // body should be empty."
  for (const char* path : {"/v2/health/live", "/v2/health/ready", "/v2/models/ecg-fm/ready"}) {
    auto r = c->Get(path);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 200) << path;
    EXPECT_TRUE(r->body.empty()) << path;
  }
  // $metadata_server_response = {name, version, extensions}
  auto server = body_json(c->Get("/v2"));
  EXPECT_EQ(server["name"], "ecgq-gateway");
  EXPECT_TRUE(server["version"].is_string());
  EXPECT_TRUE(server["extensions"].is_array());
  // $metadata_model_response = {name, versions #optional, platform, inputs, outputs}
  auto model = body_json(c->Get("/v2/models/ecg-fm"));
  EXPECT_EQ(model["name"], "ecg-fm");
  EXPECT_TRUE(model["platform"].is_string());
  ASSERT_EQ(model["inputs"].size(), 1u);
  EXPECT_EQ(model["inputs"][0],
            client::Json::parse(R"({"name":"ecg","datatype":"FP32","shape":[-1,-1]})"));
  std::vector<std::string> outputs;
  for (const auto& o : model["outputs"]) outputs.push_back(o["name"]);
  EXPECT_EQ(outputs, (std::vector<std::string>{"probs", "embedding", "logits", "segment_probs",
                                               "segment_embeddings"}));
  // An unknown model: $metadata_model_error_response = {"error": $string}.
  auto unknown = c->Get("/v2/models/resnet50");
  EXPECT_EQ(unknown->status, 404);
  EXPECT_TRUE(body_json(unknown)["error"].is_string());
  EXPECT_EQ(c->Get("/v2/models/resnet50/ready")->status, 404);
  // The optional version paths: version "1" is the model, others are unknown.
  EXPECT_EQ(model["versions"], client::Json::parse(R"(["1"])"));
  EXPECT_EQ(body_json(c->Get("/v2/models/ecg-fm/versions/1")), model);
  EXPECT_EQ(c->Get("/v2/models/ecg-fm/versions/1/ready")->status, 200);
  EXPECT_EQ(c->Get("/v2/models/ecg-fm/versions/7/ready")->status, 404);
}

TEST_F(GatewayOip, InferFp32FlatAndNestedAsTheSpecWritesIt) {
  auto c = gateway_->client();
  for (bool nested : {false, true}) {
    const std::string body = R"({
      "id" : "42",
      "parameters" : { "fs" : 500 },
      "inputs" : [
        {
          "name" : "ecg",
          "shape" : [ 12, 5000 ],
          "datatype" : "FP32",
          "data" : )" + tensor_data(5000, nested) +
                             R"(
        }
      ],
      "outputs" : [
        { "name" : "probs" },
        { "name" : "embedding" }
      ]
    })";
    auto r = c->Post("/v2/models/ecg-fm/infer", body, "application/json");
    ASSERT_TRUE(r);
    ASSERT_EQ(r->status, 200) << r->body;
    // $inference_response = {model_name, model_version #optional, id, parameters #optional,
    // outputs}
    auto j = body_json(r);
    EXPECT_EQ(j["model_name"], "ecg-fm");
    EXPECT_EQ(j["id"], "42");
    ASSERT_EQ(j["outputs"].size(), 2u);
    expect_tensor(j["outputs"][0], "probs", 1);
    EXPECT_EQ(j["outputs"][0]["shape"][0], 17);
    expect_tensor(j["outputs"][1], "embedding", 1);
    // The same ECG through /predict gives the same probabilities, in label order.
    auto p = body_json(c->Post("/predict", samples_json(5000), "application/json"));
    const auto labels = j["outputs"][0]["parameters"]["labels"].get<std::string>();
    size_t i = 0, start = 0;
    while (start <= labels.size()) {
      size_t end = labels.find(',', start);
      if (end == std::string::npos) end = labels.size();
      EXPECT_NEAR(j["outputs"][0]["data"][i++].get<double>(),
                  p["probs"][labels.substr(start, end - start)].get<double>(), 1e-5);
      start = end + 1;
    }
  }
}

TEST_F(GatewayOip, InferInt16WithGainLeadsAndSegments) {
  auto c = gateway_->client();
  // INT16 ADC units at 1000 per mV; parameters at input level; leads named; all outputs by
  // default plus per-segment ones when asked.
  const std::string body =
      R"({"inputs":[{"name":"ecg","shape":[12,5000],"datatype":"INT16",)"
      R"("parameters":{"gain":1000,"fs":500,"leads":"I,II,III,aVR,aVL,aVF,V1,V2,V3,V4,V5,V6"},)"
      R"("data":)" +
      tensor_data(5000, false, 1000.0) +
      R"(}],)"
      R"("outputs":[{"name":"probs"},{"name":"segment_probs"}]})";
  auto r = c->Post("/v2/models/ecg-fm/infer", body, "application/json");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  auto j = body_json(r);
  EXPECT_EQ(j["id"].get<std::string>().size(), 33u);  // no id given: the job id
  ASSERT_EQ(j["outputs"].size(), 2u);
  expect_tensor(j["outputs"][1], "segment_probs", 2);
  EXPECT_EQ(j["outputs"][1]["shape"], client::Json::parse("[2,17]"));
  // No outputs named: probs and embedding.
  const std::string plain = R"({"inputs":[{"name":"ecg","shape":[12,5000],"datatype":"FP32",)"
                            R"("data":)" +
                            tensor_data(5000, false) + R"(}],"parameters":{"fs":500}})";
  auto d = body_json(c->Post("/v2/models/ecg-fm/infer", plain, "application/json"));
  ASSERT_EQ(d["outputs"].size(), 2u);
  EXPECT_EQ(d["outputs"][0]["name"], "probs");
  EXPECT_EQ(d["outputs"][1]["name"], "embedding");
}

TEST_F(GatewayOip, ErrorsAreErrorStrings) {
  auto c = gateway_->client();
  struct Case {
    std::string body;
    int status;
  };
  const std::vector<Case> cases = {
      {"{", 400},
      {R"({"inputs":[]})", 400},
      {R"({"inputs":[{"name":"x","shape":[1,1],"datatype":"FP32","data":[1]}]})", 400},
      {R"({"inputs":[{"name":"ecg","shape":[12,2],"datatype":"FP32","data":[1,2]}],"parameters":{"fs":500}})",
       400},
      {R"({"inputs":[{"name":"ecg","shape":[1,1],"datatype":"BYTES","data":["a"]}]})", 400},
      // Worker-side: 1 s is shorter than one 5 s segment.
      {R"({"inputs":[{"name":"ecg","shape":[12,500],"datatype":"FP32","data":)" +
           tensor_data(500, false) + R"(}],"parameters":{"fs":500}})",
       400}};
  for (const auto& k : cases) {
    auto r = c->Post("/v2/models/ecg-fm/infer", k.body, "application/json");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, k.status) << r->body;
    auto j = body_json(r);
    EXPECT_TRUE(j["error"].is_string()) << r->body;
  }
  auto wrong_type = c->Post("/v2/models/ecg-fm/infer", "x", "text/plain");
  EXPECT_EQ(wrong_type->status, 415);
  auto unknown = c->Post("/v2/models/other/infer", "{}", "application/json");
  EXPECT_EQ(unknown->status, 404);
  EXPECT_TRUE(body_json(unknown)["error"].is_string());
}

}  // namespace
}  // namespace ecgq::test
