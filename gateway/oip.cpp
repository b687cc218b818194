#include "gateway/oip.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

#include "gateway/predict_input.hpp"

namespace ecgq::gateway::oip {

namespace {

using Json = client::Json;

Status bad(const std::string& message, const std::string& field) {
  return Status("bad_request", message, field);
}

// Appends the numbers of a flat or nested (row-major) tensor_data array.
bool flatten(const Json& data, std::vector<double>& out, int depth = 0) {
  if (depth > 4) return false;
  for (const auto& x : data) {
    if (x.is_array()) {
      if (!flatten(x, out, depth + 1)) return false;
    } else if (x.is_number()) {
      out.push_back(x.get<double>());
    } else {
      return false;
    }
  }
  return true;
}

// A parameter of the input, else of the request; null when neither has it.
const Json* parameter(const Json& request, const Json& input, const char* name) {
  for (const Json* scope : {&input, &request}) {
    if (scope->contains("parameters") && scope->at("parameters").is_object() &&
        scope->at("parameters").contains(name))
      return &scope->at("parameters").at(name);
  }
  return nullptr;
}

Status read_outputs(const Json& request, InferRequest& r) {
  if (!request.contains("outputs")) {
    r.outputs = kDefaultOutputs;
  } else {
    if (!request.at("outputs").is_array()) return bad("'outputs' must be an array", "outputs");
    for (const auto& o : request.at("outputs")) {
      const std::string name = o.is_object() ? o.value("name", "") : "";
      if (std::find(kOutputs.begin(), kOutputs.end(), name) == kOutputs.end())
        return bad("unknown output '" + name.substr(0, 64) +
                       "'; the model has probs, embedding, logits, segment_probs, "
                       "segment_embeddings",
                   "outputs");
      r.outputs.push_back(name);
    }
  }
  for (const auto& name : r.outputs) {
    std::string job_output = name.rfind("segment_", 0) == 0 ? "segments" : name;
    if (std::find(r.job.outputs.begin(), r.job.outputs.end(), job_output) == r.job.outputs.end())
      r.job.outputs.push_back(job_output);
  }
  return Status::Ok();
}

Json tensor(const std::string& name, std::vector<int64_t> shape, Json data) {
  Json t = Json::object();
  t["name"] = name;
  t["shape"] = std::move(shape);
  t["datatype"] = "FP32";
  t["data"] = std::move(data);
  return t;
}

Json floats(const float* data, size_t n) {
  Json a = Json::array();
  for (size_t i = 0; i < n; ++i) a.push_back(static_cast<double>(data[i]));
  return a;
}

}  // namespace

Expected<InferRequest> parse_infer(const std::string& body) {
  Json j = Json::parse(body, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return bad("the body is not a JSON object", "body");
  InferRequest r;
  if (j.contains("id")) {
    if (!j.at("id").is_string()) return bad("'id' must be a string", "id");
    r.id = j.at("id").get<std::string>();
  }
  if (!j.contains("inputs") || !j.at("inputs").is_array() || j.at("inputs").size() != 1)
    return bad("'inputs' must hold exactly one tensor, 'ecg'", "inputs");
  const Json& in = j.at("inputs")[0];
  if (!in.is_object() || in.value("name", "") != "ecg")
    return bad("unknown input; the model has one input, 'ecg'", "inputs[0].name");
  if (!in.contains("shape") || !in.at("shape").is_array() || in.at("shape").size() != 2 ||
      !in.at("shape")[0].is_number_integer() || !in.at("shape")[1].is_number_integer() ||
      in.at("shape")[0].get<int64_t>() <= 0 || in.at("shape")[1].get<int64_t>() <= 0)
    return Status("bad_shape", "'shape' must be [leads, samples], two positive integers",
                  "inputs[0].shape");
  const int64_t leads = in.at("shape")[0].get<int64_t>();
  const int64_t samples = in.at("shape")[1].get<int64_t>();
  if (leads > 1024 || samples > (int64_t{1} << 32) / leads)
    return Status("bad_shape", "the shape is too large", "inputs[0].shape");
  const std::string dtype = in.value("datatype", "");
  if (dtype != "FP32" && dtype != "INT16")
    return Status("unsupported_dtype", "datatype must be FP32, or INT16 with a 'gain' parameter",
                  "inputs[0].datatype");
  std::vector<double> values;
  if (!in.contains("data") || !in.at("data").is_array() || !flatten(in.at("data"), values))
    return bad("'data' must be an array of numbers (flat or nested)", "inputs[0].data");
  if (static_cast<int64_t>(values.size()) != leads * samples)
    return Status("bad_shape",
                  "'data' holds " + std::to_string(values.size()) + " numbers; the shape needs " +
                      std::to_string(leads * samples),
                  "inputs[0].data");
  double gain = 1;
  if (dtype == "INT16") {
    const Json* g = parameter(j, in, "gain");
    if (g == nullptr || !g->is_number() || !(g->get<double>() > 0) ||
        !std::isfinite(g->get<double>()))
      return bad("INT16 data need a positive 'gain' parameter (ADC units per mV)", "gain");
    gain = g->get<double>();
    for (double v : values) {
      if (v != std::floor(v) || v < -32768 || v > 32767)
        return bad("INT16 data must be integers from -32768 to 32767", "inputs[0].data");
    }
  }
  const Json* fs = parameter(j, in, "fs");
  if (fs == nullptr || !fs->is_number() || !(fs->get<double>() > 0))
    return bad("the 'fs' parameter (sample rate in Hz, a number) is required", "fs");
  std::vector<std::string> lead_names;
  if (const Json* l = parameter(j, in, "leads")) {
    if (!l->is_string())
      return bad("the 'leads' parameter must be a comma-separated string", "leads");
    lead_names = split_list(l->get<std::string>());
  }
  std::vector<float> mv(values.size());
  for (size_t i = 0; i < values.size(); ++i) mv[i] = static_cast<float>(values[i] / gain);
  auto job = job_from_samples(std::move(mv), leads, samples, fs->get<double>(), lead_names);
  if (!job) return job.status();
  r.job = std::move(*job);
  if (Status s = read_outputs(j, r); !s.ok()) return s;
  return r;
}

client::Json infer_response(const std::string& model_name, const std::string& request_id,
                            const schema::Result& result, const std::vector<std::string>& outputs) {
  client::Json out = client::Json::object();
  out["model_name"] = model_name;
  out["id"] = request_id;
  client::Json params = client::Json::object();
  params["job_id"] = result.id;
  params["n_segments"] = result.n_segments;
  params["cold_start"] = result.cold_start;
  params["cached"] = result.cached;
  params["model_sha256"] = result.model.sha256;
  params["precision"] = result.model.precision;
  out["parameters"] = params;
  client::Json tensors = client::Json::array();
  for (const auto& name : outputs) {
    const std::vector<float>* flat = name == "probs"       ? &result.probs
                                     : name == "embedding" ? &result.embedding
                                     : name == "logits"    ? &result.logits
                                                           : nullptr;
    if (flat != nullptr) {
      Json t =
          tensor(name, {static_cast<int64_t>(flat->size())}, floats(flat->data(), flat->size()));
      if (name != "embedding" && !result.labels.empty()) {
        std::string labels;
        for (const auto& l : result.labels) labels += (labels.empty() ? "" : ",") + l;
        t["parameters"] = Json{{"labels", labels}};
      }
      tensors.push_back(t);
      continue;
    }
    const auto& arr = name == "segment_probs" ? result.segment_probs : result.segment_embeddings;
    if (!arr || arr->dtype != "f32" || arr->shape.size() != 2) continue;
    const auto* data = reinterpret_cast<const float*>(arr->data.data());
    tensors.push_back(
        tensor(name, arr->shape, floats(data, static_cast<size_t>(arr->shape[0] * arr->shape[1]))));
  }
  out["outputs"] = std::move(tensors);
  return out;
}

client::Json model_metadata(const std::string& model_name, const std::vector<std::string>& labels,
                            int64_t embedding_width) {
  auto meta = [](const std::string& name, const char* dtype, std::vector<int64_t> shape) {
    client::Json t = client::Json::object();
    t["name"] = name;
    t["datatype"] = dtype;
    t["shape"] = std::move(shape);
    return t;
  };
  const int64_t n = labels.empty() ? -1 : static_cast<int64_t>(labels.size());
  client::Json out = client::Json::object();
  out["name"] = model_name;
  out["versions"] = client::Json::array({kModelVersion});
  out["platform"] = "pytorch_libtorch";
  out["inputs"] = client::Json::array({meta("ecg", "FP32", {-1, -1})});
  out["outputs"] =
      client::Json::array({meta("probs", "FP32", {n}), meta("embedding", "FP32", {embedding_width}),
                           meta("logits", "FP32", {n}), meta("segment_probs", "FP32", {-1, n}),
                           meta("segment_embeddings", "FP32", {-1, embedding_width})});
  return out;
}

client::Json error_body(const std::string& message) {
  return client::Json{{"error", message}};
}

}  // namespace ecgq::gateway::oip
