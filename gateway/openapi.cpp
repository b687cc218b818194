#include "gateway/openapi.hpp"

#include <initializer_list>
#include <utility>

namespace ecgq::gateway {

namespace {

using client::Json;

Json ref(const std::string& name) {
  return Json{{"$ref", "#/components/schemas/" + name}};
}

Json json_content(const Json& schema) {
  return Json{{"application/json", {{"schema", schema}}}};
}

// Responses: status -> (description, schema name or "" for no body, "text" for text/plain).
Json responses(std::initializer_list<std::tuple<int, const char*, const char*>> list) {
  Json out = Json::object();
  for (const auto& [status, description, schema] : list) {
    Json r = {{"description", description}};
    const std::string s = schema;
    if (s == "text") {
      r["content"] = {{"text/plain", {{"schema", {{"type", "string"}}}}}};
    } else if (!s.empty()) {
      r["content"] = json_content(ref(s));
    }
    out[std::to_string(status)] = r;
  }
  return out;
}

Json query(const char* name, const char* description, const char* type = "string") {
  return Json{{"name", name},
              {"in", "query"},
              {"required", false},
              {"description", description},
              {"schema", {{"type", type}}}};
}

Json path_param(const char* name, const char* description) {
  return Json{{"name", name},
              {"in", "path"},
              {"required", true},
              {"description", description},
              {"schema", {{"type", "string"}}}};
}

Json object(std::initializer_list<std::pair<const char*, Json>> props,
            std::initializer_list<const char*> required = {}) {
  Json o = {{"type", "object"}, {"properties", Json::object()}};
  for (const auto& [k, v] : props) o["properties"][k] = v;
  if (required.size() > 0) o["required"] = Json::array();
  for (const char* r : required) o["required"].push_back(r);
  return o;
}

Json type(const char* t) {
  return Json{{"type", t}};
}

// A value that may also be null (OpenAPI 3.1 is JSON Schema 2020-12: type arrays).
Json or_null(const char* t) {
  return Json{{"type", Json::array({t, "null"})}};
}

Json array_of(const Json& items) {
  return Json{{"type", "array"}, {"items", items}};
}

Json schemas() {
  Json s = Json::object();
  s["Error"] = object({{"error", object({{"code", type("string")},
                                         {"message", type("string")},
                                         {"field", type("string")},
                                         {"retry_after_ms", type("integer")}},
                                        {"code", "message", "field"})},
                       {"id", type("string")}},
                      {"error"});
  s["Result"] =
      object({{"path", type("string")},
              {"id", type("string")},
              {"status", type("string")},
              {"cold_start", type("boolean")},
              {"cached", type("boolean")},
              {"attempts", type("integer")},
              {"worker", type("string")},
              {"model", type("object")},
              {"n_segments", type("integer")},
              {"timings", type("object")},
              {"probs", Json{{"type", "object"}, {"additionalProperties", type("number")}}},
              {"logits", type("object")},
              {"embedding", array_of(type("number"))},
              {"segment_probs", array_of(array_of(type("number")))},
              {"segment_embeddings", array_of(array_of(type("number")))},
              {"saliency", array_of(array_of(type("number")))},
              {"derived_leads", array_of(type("string"))},
              {"ignored_channels", array_of(type("string"))},
              {"masked_leads", array_of(type("string"))}},
             {"path", "id", "status", "model", "n_segments", "timings"});
  s["Accepted"] =
      object({{"id", type("string")}, {"state", type("string")}, {"location", type("string")}},
             {"id", "state", "location"});
  s["JobState"] = object(
      {{"id", type("string")},
       {"state", Json{{"type", "string"}, {"enum", {"queued", "running", "done", "failed"}}}},
       {"position", type("integer")},
       {"http_status", type("integer")},
       {"result", ref("Result")},
       {"error", type("object")}},
      {"id", "state"});
  s["Health"] = object({{"status", Json{{"type", "string"}, {"enum", {"ok", "unavailable"}}}},
                        {"reason", type("string")},
                        {"service", type("string")},
                        {"model_loaded", type("boolean")},
                        {"workers", type("object")},
                        {"queue", type("object")},
                        {"model", or_null("object")},
                        {"gateway", type("object")}},
                       {"status", "service", "model_loaded", "workers", "queue"});
  s["UiRecords"] = object({{"records", array_of(type("string"))}}, {"records"});
  s["UiPrediction"] = object({{"record", object({{"fs", type("number")},
                                                 {"leads", array_of(type("string"))},
                                                 {"samples", array_of(array_of(type("number")))},
                                                 {"seconds", type("number")},
                                                 {"shown_seconds", type("number")}},
                                                {"fs", "leads", "samples"})},
                              {"result", ref("Result")}},
                             {"record", "result"});
  s["Root"] = object({{"name", type("string")},
                      {"description", type("string")},
                      {"version", type("string")},
                      {"service", type("string")},
                      {"ready", type("boolean")},
                      {"model", or_null("object")},
                      {"loading", type("object")},
                      {"links", type("object")}},
                     {"name", "version", "model", "loading", "links"});
  Json labels = array_of(type("string"));
  labels["type"] = Json::array({"array", "null"});
  s["Info"] = object({{"model", or_null("object")},
                      {"labels", labels},
                      {"labels_note", type("string")},
                      {"input", type("object")},
                      {"outputs", type("object")},
                      {"preprocessing", type("string")},
                      {"precision", or_null("string")},
                      {"version", type("string")}},
                     {"labels", "input", "outputs", "preprocessing", "version"});
  s["Samples"] = object({{"samples", array_of(array_of(type("number")))},
                         {"fs", type("number")},
                         {"leads", array_of(type("string"))},
                         {"outputs", array_of(type("string"))},
                         {"deadline", type("string")},
                         {"missing_leads", Json{{"type", "string"}, {"enum", {"refuse", "zero"}}}}},
                        {"samples", "fs"});
  s["Upload"] = object({{"file", array_of(Json{{"type", "string"}, {"format", "binary"}})},
                        {"outputs", type("string")},
                        {"fs", type("string")},
                        {"leads", type("string")},
                        {"deadline", type("string")},
                        {"missing_leads", type("string")}},
                       {"file"});
  s["V2Error"] = object({{"error", type("string")}}, {"error"});
  s["ServerMetadata"] = object({{"name", type("string")},
                                {"version", type("string")},
                                {"extensions", array_of(type("string"))}},
                               {"name", "version", "extensions"});
  s["MetadataTensor"] = object({{"name", type("string")},
                                {"datatype", type("string")},
                                {"shape", array_of(type("integer"))}},
                               {"name", "datatype", "shape"});
  s["ModelMetadata"] = object({{"name", type("string")},
                               {"versions", array_of(type("string"))},
                               {"platform", type("string")},
                               {"inputs", array_of(ref("MetadataTensor"))},
                               {"outputs", array_of(ref("MetadataTensor"))}},
                              {"name", "platform", "inputs", "outputs"});
  s["Tensor"] = object({{"name", type("string")},
                        {"shape", array_of(type("integer"))},
                        {"datatype", type("string")},
                        {"parameters", type("object")},
                        {"data", type("array")}},
                       {"name", "shape", "datatype", "data"});
  s["InferRequest"] = object(
      {{"id", type("string")},
       {"parameters", type("object")},
       {"inputs", array_of(ref("Tensor"))},
       {"outputs",
        array_of(object({{"name", type("string")}, {"parameters", type("object")}}, {"name"}))}},
      {"inputs"});
  s["InferResponse"] = object({{"model_name", type("string")},
                               {"model_version", type("string")},
                               {"id", type("string")},
                               {"parameters", type("object")},
                               {"outputs", array_of(ref("Tensor"))}},
                              {"model_name", "id", "outputs"});
  return s;
}

Json operation(const char* summary, Json resp, bool open = false) {
  Json op = {{"summary", summary}, {"responses", std::move(resp)}};
  if (open) op["security"] = Json::array();
  return op;
}

// The ECG-FM API, /jobs, /metrics and /openapi.json.
void add_ecgfm_paths(Json& paths) {
  paths["/"]["get"] = operation("What this service is, its model and loading strategy",
                                responses({{200, "service description", "Root"},
                                           {401, "missing or unknown token", "Error"}}));
  paths["/health"]["get"] = operation(
      "Whether the service can answer (workers by state, model loaded, queue)",
      responses({{200, "ready", "Health"}, {503, "not ready (reason given)", "Health"}}), true);
  paths["/info"]["get"] = operation(
      "Labels, input expectations, outputs, preprocessing",
      responses({{200, "model information", "Info"}, {401, "missing or unknown token", "Error"}}));
  Json predict =
      operation("Predict one record (uploaded files or JSON samples)",
                responses({{200, "the result, as one line of `ecgq submit`", "Result"},
                           {202, "queued (?async=1); poll Location", "Accepted"},
                           {400, "bad input (gateway or worker)", "Error"},
                           {401, "missing or unknown token", "Error"},
                           {413, "body too large (answered before it is read)", "Error"},
                           {415, "wrong content type", "Error"},
                           {429, "queue_full (Retry-After)", "Error"},
                           {502, "worker_lost or model_error", "Error"},
                           {503, "no worker, broker unreachable or busy (Retry-After)", "Error"},
                           {504, "deadline exceeded", "Error"}}));
  predict["parameters"] = Json::array(
      {query("async", "1: answer 202 with the job id at once"),
       query("outputs", "comma-separated: probs, logits, embedding, segments, saliency"),
       query("fs", "sample rate in Hz of files without one"),
       query("leads", "comma-separated lead names of files without names"),
       query("deadline", "budget from broker receipt, e.g. 30s"),
       query("missing_leads",
             "refuse (default) or zero: leads that cannot be derived go to the model as zeros, "
             "listed in masked_leads")});
  predict["requestBody"] = {{"required", true},
                            {"content",
                             {{"multipart/form-data", {{"schema", ref("Upload")}}},
                              {"application/json", {{"schema", ref("Samples")}}}}}};
  paths["/predict"]["post"] = predict;
  Json get_job = operation("State and result of an ?async=1 job",
                           responses({{200, "the job", "JobState"},
                                      {401, "missing or unknown token", "Error"},
                                      {403, "the job belongs to another token", "Error"},
                                      {404, "unknown or expired job", "Error"},
                                      {503, "the broker cannot be asked (Retry-After)", "Error"}}));
  get_job["parameters"] = Json::array({path_param("id", "the job id")});
  paths["/jobs/{id}"]["get"] = get_job;
  Json del_job = operation("Cancel an ?async=1 job that is still queued",
                           responses({{202, "cancel requested", "JobState"},
                                      {401, "missing or unknown token", "Error"},
                                      {403, "the job belongs to another token", "Error"},
                                      {404, "unknown or expired job", "Error"}}));
  del_job["parameters"] = Json::array({path_param("id", "the job id")});
  paths["/jobs/{id}"]["delete"] = del_job;
  paths["/metrics"]["get"] = operation("Prometheus metrics of the gateway",
                                       responses({{200, "text exposition format", "text"},
                                                  {401, "missing or unknown token", "Error"}}));
  paths["/openapi.json"]["get"] = operation(
      "This document",
      responses({{200, "OpenAPI 3 document", ""}, {401, "missing or unknown token", "Error"}}));
  paths["/openapi.json"]["get"]["responses"]["200"]["content"] = {
      {"application/json", {{"schema", {{"type", "object"}}}}}};
}

// The web page and what it calls.
void add_ui_paths(Json& paths) {
  paths["/ui"]["get"] =
      operation("The web page: an ECG plotted with the model's saliency and labels",
                responses({{200, "HTML (no token needed to load it)", ""}}), true);
  paths["/ui"]["get"]["responses"]["200"]["content"] = {
      {"text/html", {{"schema", {{"type", "string"}}}}}};
  paths["/ui/records"]["get"] = operation(
      "The bundled records the page offers (setting ui_records)",
      responses({{200, "record names", "UiRecords"}, {401, "missing or unknown token", "Error"}}));
  Json predict = operation(
      "Predict one record for the page: the /predict result with the record's samples in mV",
      responses({{200, "the record (first 60 s) and the result", "UiPrediction"},
                 {400, "bad input, or a record not in /ui/records", "Error"},
                 {401, "missing or unknown token", "Error"},
                 {415, "wrong content type", "Error"},
                 {503, "no worker, broker unreachable or busy", "Error"}}));
  predict["parameters"] = Json::array({query("record", "a name from /ui/records (no body then)")});
  predict["requestBody"] = {{"required", false},
                            {"content",
                             {{"multipart/form-data", {{"schema", ref("Upload")}}},
                              {"application/json", {{"schema", ref("Samples")}}}}}};
  paths["/ui/predict"]["post"] = predict;
}

// The Open Inference Protocol paths.
void add_oip_paths(Json& paths, const std::string& model_name) {
  paths["/v2"]["get"] = operation("Open Inference Protocol: server metadata",
                                  responses({{200, "server metadata", "ServerMetadata"},
                                             {401, "missing or unknown token", "Error"}}));
  paths["/v2/health/live"]["get"] =
      operation("Open Inference Protocol: server live", responses({{200, "live", ""}}), true);
  paths["/v2/health/ready"]["get"] =
      operation("Open Inference Protocol: server ready",
                responses({{200, "ready", ""}, {400, "not ready", ""}}), true);
  Json model = path_param("model", ("the model name, '" + model_name + "'").c_str());
  Json version = path_param("version", "the model version, '1' (the only one served)");
  Json meta = operation("Open Inference Protocol: model metadata",
                        responses({{200, "model metadata", "ModelMetadata"},
                                   {401, "missing or unknown token", "Error"},
                                   {404, "unknown model or version", "V2Error"}}));
  Json ready = operation("Open Inference Protocol: model ready",
                         responses({{200, "ready", ""},
                                    {400, "not ready", ""},
                                    {401, "missing or unknown token", "Error"},
                                    {404, "unknown model or version", "V2Error"}}));
  Json infer = operation(
      "Open Inference Protocol: inference (input 'ecg' [leads, samples] FP32, or INT16 with "
      "parameter gain; parameters fs and leads)",
      responses({{200, "inference response", "InferResponse"},
                 {400, "bad input", "V2Error"},
                 {401, "missing or unknown token", "Error"},
                 {404, "unknown model or version", "V2Error"},
                 {413, "body too large", "Error"},
                 {415, "wrong content type", "Error"},
                 {429, "queue_full (Retry-After)", "V2Error"},
                 {502, "worker_lost or model_error", "V2Error"},
                 {503, "unavailable (Retry-After)", "V2Error"},
                 {504, "deadline exceeded", "V2Error"}}));
  infer["requestBody"] = {{"required", true}, {"content", json_content(ref("InferRequest"))}};
  for (const std::string base : {"/v2/models/{model}", "/v2/models/{model}/versions/{version}"}) {
    Json params = Json::array({model});
    if (base.find("{version}") != std::string::npos) params.push_back(version);
    for (Json* op : {&meta, &ready, &infer}) (*op)["parameters"] = params;
    paths[base]["get"] = meta;
    paths[base + "/ready"]["get"] = ready;
    paths[base + "/infer"]["post"] = infer;
  }
}

}  // namespace

Json openapi_document(const std::string& model_name) {
  Json paths = Json::object();
  add_ecgfm_paths(paths);
  add_oip_paths(paths, model_name);
  add_ui_paths(paths);
  Json doc;
  doc["openapi"] = "3.1.0";
  doc["info"] = {{"title", "ecgq-gateway"},
                 {"version", ECGQ_VERSION},
                 {"description",
                  "ECG-FM over HTTP: the ECG-FM API, the Open Inference Protocol "
                  "(KServe v2) and Prometheus metrics, in front of an ecgq broker."}};
  doc["paths"] = paths;
  doc["components"] = {{"schemas", schemas()},
                       {"securitySchemes", {{"bearer", {{"type", "http"}, {"scheme", "bearer"}}}}}};
  doc["security"] = Json::array({Json{{"bearer", Json::array()}}});
  return doc;
}

}  // namespace ecgq::gateway
