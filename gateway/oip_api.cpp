// The Open Inference Protocol endpoints of the gateway (KServe v2 / Triton REST): server and model
// health, metadata and inference. Health answers carry no body: 200 is true, 400 false.
#include <boost/asio/post.hpp>

#include "gateway/gateway.hpp"
#include "gateway/http_errors.hpp"
#include "gateway/oip.hpp"
#include "gateway/service_view.hpp"

namespace ecgq::gateway {

using oip::kModelVersion;

namespace {

HttpResponse empty(int status) {
  HttpResponse r;
  r.status = status;
  r.content_type.clear();
  return r;
}

// A v2 error: {"error": "message"} with the status of `code` (and Retry-After where it applies).
HttpResponse v2_error(const std::string& code, const std::string& message,
                      std::optional<int64_t> retry_after_ms = std::nullopt) {
  HttpResponse r = json_response(http_status(code), oip::error_body(message));
  if (r.status == 429 || r.status == 503) {
    const int64_t ms = retry_after_ms.value_or(1000);
    r.with("Retry-After", std::to_string(std::max<int64_t>(1, (ms + 999) / 1000)));
  }
  return r;
}

}  // namespace

void Gateway::add_oip_routes() {
  auto ready = [this] {
    return service_view(link_->status(), config_.service, config_.status_interval * 5).ready;
  };
  // The model is served under its name, and as version "1" of it (the protocol's optional
  // /versions/V paths).
  auto known = [this](const RequestContext& ctx) {
    auto v = ctx.params.find("version");
    return ctx.params.at("model") == config_.model_name &&
           (v == ctx.params.end() || v->second == kModelVersion);
  };
  auto unknown_model = [this](const RequestContext& ctx) {
    return v2_error("no_such_model", "unknown model or version '" +
                                         ctx.params.at("model").substr(0, 64) +
                                         "'; this server has '" + config_.model_name +
                                         "', version " + kModelVersion);
  };
  router_.add({"GET", "/v2", false, {}, [](HttpRequest&, const RequestContext&, Respond respond) {
                 respond(json_response(200, client::Json{{"name", "ecgq-gateway"},
                                                         {"version", ECGQ_VERSION},
                                                         {"extensions", client::Json::array()}}));
               }});
  router_.add({"GET",
               "/v2/health/live",
               true,
               {},
               [](HttpRequest&, const RequestContext&, Respond respond) { respond(empty(200)); }});
  router_.add({"GET",
               "/v2/health/ready",
               true,
               {},
               [ready](HttpRequest&, const RequestContext&, Respond respond) {
                 respond(empty(ready() ? 200 : 400));
               }});
  RouteFn metadata = [this, known, unknown_model](HttpRequest&, const RequestContext& ctx,
                                                  Respond respond) {
    if (!known(ctx)) return respond(unknown_model(ctx));
    const auto view = service_view(link_->status(), config_.service, config_.status_interval * 5);
    respond(json_response(
        200, oip::model_metadata(config_.model_name,
                                 view.labels.empty() ? link_->labels() : view.labels, -1)));
  };
  RouteFn model_ready = [ready, known, unknown_model](HttpRequest&, const RequestContext& ctx,
                                                      Respond respond) {
    if (!known(ctx)) return respond(unknown_model(ctx));
    respond(empty(ready() ? 200 : 400));
  };
  RouteFn infer = [this, known, unknown_model](HttpRequest& request, const RequestContext& ctx,
                                               Respond respond) {
    if (!known(ctx)) return respond(unknown_model(ctx));
    post_infer(request, ctx, std::move(respond));
  };
  for (const std::string base : {"/v2/models/{model}", "/v2/models/{model}/versions/{version}"}) {
    router_.add({"GET", base, false, {}, metadata});
    router_.add({"GET", base + "/ready", false, {}, model_ready});
    router_.add({"POST", base + "/infer", false, {"application/json"}, infer});
  }
}

void Gateway::post_infer(HttpRequest& request, const RequestContext& ctx, Respond respond) {
  auto body = std::make_shared<std::string>(std::move(request.body));
  boost::asio::post(*pool_, [this, body, watch = request.watch, ctx, respond] {
    auto in = oip::parse_infer(*body);
    if (!in) {
      const Status s = in.status();
      return respond(
          v2_error(s.code(), s.message() + (s.field().empty() ? "" : " (" + s.field() + ")")));
    }
    in->job.id = new_job_id();
    const std::string job_id = in->job.id;
    const std::string rid = in->id.empty() ? in->job.id : in->id;
    const auto outputs = in->outputs;
    const bool queued =
        submit(std::move(in->job), ctx, [this, respond, rid, outputs](schema::Result r) {
          if (r.status == "ok") {
            return respond(
                json_response(200, oip::infer_response(config_.model_name, rid, r, outputs))
                    .with("X-Job-Id", r.id));
          }
          const auto e = r.error.value_or(schema::ErrorInfo{"internal", "no error given", "", {}});
          respond(
              v2_error(e.code, e.code + ": " + e.message, e.retry_after_ms).with("X-Job-Id", r.id));
        });
    if (!queued) return respond(v2_error("busy", "too many requests in flight; retry later"));
    // Nobody will read the answer of a client that left: its queued job goes.
    if (watch) watch->on_gone([this, job_id] { link_->cancel(job_id); });
  });
}

}  // namespace ecgq::gateway
