// The ECG-FM API of the gateway: GET /, /health, /info, POST /predict, GET and DELETE /jobs/ID,
// GET /metrics and /openapi.json.
#include <algorithm>
#include <boost/asio/post.hpp>

#include "client/json_output.hpp"
#include "gateway/gateway.hpp"
#include "gateway/http_errors.hpp"
#include "gateway/openapi.hpp"
#include "gateway/predict_input.hpp"
#include "gateway/service_view.hpp"
#include "records/preprocess.hpp"

namespace ecgq::gateway {

namespace {

using client::Json;

// The /predict answer for a result: the `ecgq submit` line, or the error with its status.
HttpResponse result_response(const std::string& path, const schema::Result& r,
                             const std::vector<std::string>& outputs) {
  if (r.status == "ok") return json_response(200, client::result_json(path, r, outputs));
  const schema::ErrorInfo e =
      r.error.value_or(schema::ErrorInfo{"internal", "no error given", "", {}});
  return error_response(e.code, e.message, e.field, e.retry_after_ms, r.id);
}

Json model_json(const ServiceView& v) {
  return v.model.is_null() ? Json(nullptr) : v.model;
}

}  // namespace

void Gateway::add_ecgfm_routes() {
  using namespace std::placeholders;
  auto bind = [this](void (Gateway::*fn)(HttpRequest&, const RequestContext&, Respond)) {
    return [this, fn](HttpRequest& r, const RequestContext& c, Respond d) {
      (this->*fn)(r, c, std::move(d));
    };
  };
  router_.add({"GET", "/", false, {}, bind(&Gateway::get_root)});
  router_.add({"GET", "/health", true, {}, bind(&Gateway::get_health)});
  router_.add({"GET", "/info", false, {}, bind(&Gateway::get_info)});
  router_.add({"POST",
               "/predict",
               false,
               {"multipart/form-data", "application/json"},
               bind(&Gateway::post_predict)});
  router_.add({"GET", "/jobs/{id}", false, {}, bind(&Gateway::get_job)});
  router_.add({"DELETE", "/jobs/{id}", false, {}, bind(&Gateway::delete_job)});
  router_.add({"GET", "/metrics", false, {}, bind(&Gateway::get_metrics)});
  router_.add({"GET",
               "/openapi.json",
               false,
               {},
               [this](HttpRequest&, const RequestContext&, Respond respond) {
                 respond(json_response(200, openapi_document(config_.model_name)));
               }});
}

void Gateway::get_root(HttpRequest&, const RequestContext&, Respond respond) {
  const ServiceView v = service_view(link_->status(), config_.service, config_.status_interval * 5);
  Json j;
  j["name"] = "ecgq-gateway";
  j["description"] =
      "ECG-FM (a wav2vec 2.0 transformer for 12-lead ECGs) over HTTP: each request is a job on "
      "an ecgq broker, run by LibTorch workers.";
  j["version"] = ECGQ_VERSION;
  j["service"] = config_.service;
  j["ready"] = v.ready;
  j["model"] = model_json(v);
  j["loading"] = {
      {"cache", "workers load the checkpoint from a Hugging Face-layout cache (downloaded once)"},
      {"sleep", "a worker idle for its idle_timeout unloads the model and stays registered"},
      {"wake", "a request for an asleep worker wakes it; the result says cold_start and wake_ms"}};
  j["links"] = {{"health", "/health"},
                {"info", "/info"},
                {"predict", "/predict"},
                {"jobs", "/jobs/{id}"},
                {"openapi", "/openapi.json"},
                {"metrics", "/metrics"},
                {"ui", "/ui"},
                {"v2", "/v2"},
                {"v2_infer", "/v2/models/" + config_.model_name + "/infer"}};
  respond(json_response(200, j));
}

void Gateway::get_health(HttpRequest&, const RequestContext&, Respond respond) {
  const ServiceView v = service_view(link_->status(), config_.service, config_.status_interval * 5);
  Json j;
  j["status"] = v.ready ? "ok" : "unavailable";
  if (!v.ready) j["reason"] = v.reason;
  j["service"] = config_.service;
  j["model_loaded"] = v.model_loaded;
  j["workers"] = v.workers;
  j["queue"] = {{"queued", v.queued}, {"in_flight", v.in_flight}};
  j["model"] = model_json(v);
  j["gateway"] = {{"jobs_in_flight", link_->in_flight()},
                  {"status_age_ms", static_cast<int64_t>(v.status_age_ms)}};
  HttpResponse r = json_response(v.ready ? 200 : 503, j);
  if (!v.ready) r.with("Retry-After", "5");
  respond(std::move(r));
}

void Gateway::get_info(HttpRequest&, const RequestContext&, Respond respond) {
  const ServiceView v = service_view(link_->status(), config_.service, config_.status_interval * 5);
  const auto labels = v.labels.empty() ? link_->labels() : v.labels;
  Json j;
  j["model"] = model_json(v);
  j["precision"] = v.model.is_null() ? Json(nullptr) : Json(v.model.value("precision", ""));
  j["labels"] = labels.empty() ? Json(nullptr) : Json(labels);
  if (labels.empty())
    j["labels_note"] =
        "label names are learned from the first result (the broker's status does "
        "not carry them yet)";
  j["input"] = {{"leads", kModelLeads},
                {"lead_names",
                 "any order and the usual spellings; III, aVR, aVL, aVF are derived from I "
                 "and II when missing"},
                {"fs_hz", 500},
                {"other_rates", "resampled to 500 Hz (linear)"},
                {"segment_seconds", 5},
                {"lengths",
                 "cut into consecutive 5 s segments; a tail shorter than 5 s is not used; a "
                 "record shorter than 5 s is refused (too_short)"},
                {"formats",
                 {"WFDB .hea + signal files", "Challenge .mat + .hea", ".mat (v4)", ".csv", ".npy",
                  "EDF / EDF+", "HL7 aECG XML", "GE MUSE XML",
                  "Philips XML (SierraECG 1.03, "
                  "PhilipsECG 1.04, 1.04.01)",
                  "DICOM ECG waveforms", "SCP-ECG v1.x / v2.x", "JSON {samples, fs, leads}"}},
                {"formats_note",
                 "told apart by content, not only by extension (docs/formats.md); files that "
                 "carry their sample rate refuse a different 'fs'"},
                {"missing_leads",
                 {{"refuse",
                   "default: a record lacking leads that cannot be derived fails with "
                   "missing_leads"},
                  {"zero",
                   "those leads go to the model as zeros (as in ECG-FM's random lead masking) "
                   "and the result lists them in masked_leads; accuracy with masked leads is "
                   "not validated for the fine-tuned labels"}}}};
  j["outputs"] = {{"probs", "per-record label probabilities {label: p}, aggregated over segments"},
                  {"logits", "per-record logits, mean over segments"},
                  {"embedding", "per-record embedding, mean over segments"},
                  {"segments", "segment_probs and segment_embeddings, one row per segment"},
                  {"saliency", "per-segment saliency"},
                  {"default", "probs"}};
  j["preprocessing"] =
      "lead mapping, derived limb leads, resampling to 500 Hz, per-lead z-score "
      "over the whole record, 5 s segments (ECG-FM's recipe, in the worker)";
  j["version"] = ECGQ_VERSION;
  respond(json_response(200, j));
}

void Gateway::post_predict(HttpRequest& request, const RequestContext& ctx, Respond respond) {
  auto req = std::make_shared<HttpRequest>(std::move(request));
  auto work = [this, req, ctx, respond] {
    auto in = read_predict(*req, config_.upload_dir);
    if (!in) {
      const Status s = in.status();
      return respond(error_response(s.code(), s.message(), s.field()));
    }
    in->job.id = new_job_id();
    const std::string id = in->job.id;
    const std::string path = in->path;
    const std::vector<std::string> outputs = in->fields.outputs;
    if (!in->fields.async) {
      const bool queued =
          submit(std::move(in->job), ctx, [respond, path, outputs](schema::Result r) {
            respond(result_response(path, r, outputs).with("X-Job-Id", r.id));
          });
      if (!queued)
        return respond(error_response("busy", "too many requests in flight; retry later"));
      // Nobody will read the answer of a client that left: its queued job goes.
      if (req->watch) req->watch->on_gone([this, id] { link_->cancel(id); });
      return;
    }
    if (!jobs_.add(id, ctx.token))
      return respond(error_response("busy", "too many async jobs are held; retry later"));
    const bool queued = submit(
        std::move(in->job), ctx,
        [this, id, path, outputs](schema::Result r) {
          HttpResponse res = result_response(path, r, outputs);
          jobs_.finish(id, r.status == "ok", res.status, std::move(res.body));
        },
        [this, id](const schema::Progress& p) {
          jobs_.progress(id, p.event == "running" || p.event == "waking" ? "running" : "queued");
        });
    if (!queued) {
      jobs_.finish(id, false, 503, "");
      return respond(error_response("busy", "too many requests in flight; retry later"));
    }
    Json j = {{"id", id}, {"state", "queued"}, {"location", "/jobs/" + id}};
    respond(json_response(202, j).with("Location", "/jobs/" + id).with("X-Job-Id", id));
  };
  // A small upload decodes in well under a millisecond: a hop to the pool would cost more.
  if (req->body.size() <= kInlineBodyBytes) return work();
  boost::asio::post(*pool_, std::move(work));
}

namespace {

// The /jobs/ID answer for what the broker knows of a job (mmi.job); every output the result
// carries is shown (the request's own choice is not known there).
HttpResponse broker_job_response(const std::string& id, Expected<ext::JobInfo> info) {
  if (!info) {
    const Status& s = info.status();
    if (s.code() == "unsupported") return error_response("no_such_job", s.message(), "id");
    return error_response(s.code() == "shutting_down" ? "shutting_down" : "broker_unreachable",
                          "cannot ask the broker about the job: " + s.message());
  }
  if (info->state == "unknown" || info->state.empty())
    return error_response("no_such_job", "no job with this id (unknown or expired)", "id");
  Json j = {{"id", id}, {"state", info->state}};
  if (info->position >= 0) j["position"] = info->position;
  if (!info->result.empty()) {
    auto r = schema::decode_result(info->result);
    if (r && r->status == "ok") {
      j["http_status"] = 200;
      j["result"] = client::result_json("", *r, schema::kOutputNames);
    } else if (r) {
      const auto e = r->error.value_or(schema::ErrorInfo{"internal", "no error given", "", {}});
      j["http_status"] = http_status(e.code);
      j["error"] = {{"code", e.code}, {"message", e.message}, {"field", e.field}};
    }
  }
  return json_response(200, j);
}

// Ids this gateway gives ("g" + 128 random bits in hex): knowing one is the right to read it.
bool gateway_job_id(const std::string& id) {
  return id.size() == 33 && id[0] == 'g' && std::all_of(id.begin() + 1, id.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}

}  // namespace

void Gateway::get_job(HttpRequest&, const RequestContext& ctx, Respond respond) {
  const std::string id = ctx.params.at("id");
  auto rec = jobs_.get(id);
  if (!rec && gateway_job_id(id)) {
    // Not in this gateway's record (restarted, or submitted through another gateway): the
    // broker keeps results by id for its result_ttl.
    return link_->lookup(id, [id, respond](Expected<ext::JobInfo> info) {
      respond(broker_job_response(id, std::move(info)));
    });
  }
  if (!rec)
    return respond(error_response("no_such_job", "no job with this id (unknown or expired)", "id"));
  if (rec->owner != ctx.token)
    return respond(error_response("forbidden", "the job belongs to another token", "id"));
  Json j = {{"id", id}, {"state", rec->state}};
  if (rec->http_status != 0) {
    j["http_status"] = rec->http_status;
    auto body = Json::parse(rec->result_json, nullptr, false);
    if (!body.is_discarded())
      j[rec->state == "done" ? "result" : "error"] =
          rec->state == "done" ? body : body.value("error", Json(nullptr));
  }
  respond(json_response(200, j));
}

void Gateway::delete_job(HttpRequest&, const RequestContext& ctx, Respond respond) {
  const std::string id = ctx.params.at("id");
  auto rec = jobs_.get(id);
  if (!rec) return respond(error_response("no_such_job", "no job with this id", "id"));
  if (rec->owner != ctx.token)
    return respond(error_response("forbidden", "the job belongs to another token", "id"));
  if (rec->http_status == 0) link_->cancel(id);
  respond(json_response(202, Json{{"id", id},
                                  {"state", rec->state},
                                  {"cancel", rec->http_status == 0 ? "requested" : "finished"}}));
}

void Gateway::get_metrics(HttpRequest&, const RequestContext&, Respond respond) {
  const auto& st = server_->stats();
  const StatusSnapshot snap = link_->status();
  const bool up = snap.valid && snap.error.empty();
  std::vector<Gauge> gauges = {
      {"ecgq_gateway_http_connections", "HTTP connections open now.", "gauge",
       static_cast<double>(st.open.load())},
      {"ecgq_gateway_http_connections_accepted_total", "HTTP connections accepted.", "counter",
       static_cast<double>(st.accepted.load())},
      {"ecgq_gateway_http_connections_refused_total",
       "HTTP connections refused because max_connections were open.", "counter",
       static_cast<double>(st.refused.load())},
      {"ecgq_gateway_http_timeouts_total",
       "HTTP connections closed because a header, body or idle wait ran out.", "counter",
       static_cast<double>(st.timeouts.load())},
      {"ecgq_gateway_jobs_in_flight", "Jobs submitted to the broker and not finished.", "gauge",
       static_cast<double>(link_->in_flight())},
      {"ecgq_gateway_broker_up", "1 when the broker answered the last mmi.status.", "gauge",
       up ? 1.0 : 0.0},
      {"ecgq_gateway_uptime_seconds", "Seconds since the gateway started.", "gauge",
       ms_since(started_) / 1000.0}};
  HttpResponse r;
  r.content_type = "text/plain; version=0.0.4; charset=utf-8";
  r.body = metrics_.render(gauges);
  respond(std::move(r));
}

}  // namespace ecgq::gateway
