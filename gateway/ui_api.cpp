// GET /ui (the page: gateway/ui/index.html, compiled in), GET /ui/records (the bundled records)
// and POST /ui/predict (a /predict whose answer also carries the record's samples in mV, so the
// page can draw the ECG with the saliency over it).
#include <boost/asio/post.hpp>
#include <cmath>
#include <filesystem>

#include "client/job_source.hpp"
#include "client/json_output.hpp"
#include "gateway/gateway.hpp"
#include "gateway/http_errors.hpp"
#include "gateway/predict_input.hpp"
#include "records/preprocess.hpp"
#include "records/record_discovery.hpp"

namespace ecgq::gateway {

// The page, generated from gateway/ui/index.html at configure time (ui_page.cpp).
extern const char* const kUiPage;

namespace {

// The page draws at most this much of a record (a minute at 100 px/s is a 6000 px wide strip).
constexpr double kShownSeconds = 60;
// Outputs the page draws: probabilities, the saliency overlay and the segments.
const std::vector<std::string> kUiOutputs = {"probs", "saliency", "segments"};

// The record as the page draws it: {fs, leads, samples: [[mV...] per lead], seconds,
// shown_seconds}.
Expected<client::Json> record_json(const schema::Job& job) {
  ASSIGN_OR_RETURN(const RawEcg raw, raw_from_job(job));
  const int64_t shown =
      std::min<int64_t>(raw.n_samples, static_cast<int64_t>(kShownSeconds * raw.fs));
  client::Json samples = client::Json::array();
  for (int64_t l = 0; l < raw.n_leads; ++l) {
    client::Json lead = client::Json::array();
    for (int64_t t = 0; t < shown; ++t)
      lead.push_back(std::round(raw.samples[static_cast<size_t>(l * raw.n_samples + t)] * 1e4) /
                     1e4);
    samples.push_back(std::move(lead));
  }
  return client::Json{{"fs", raw.fs},
                      {"leads", raw.leads},
                      {"samples", std::move(samples)},
                      {"seconds", static_cast<double>(raw.n_samples) / raw.fs},
                      {"shown_seconds", static_cast<double>(shown) / raw.fs}};
}

}  // namespace

std::vector<std::string> Gateway::ui_records() const {
  std::vector<std::string> names;
  if (config_.ui_records.empty() || !std::filesystem::is_directory(config_.ui_records))
    return names;
  for (const std::string& path : discover_records({config_.ui_records}))
    names.push_back(std::filesystem::path(path).lexically_relative(config_.ui_records).string());
  return names;
}

void Gateway::add_ui_routes() {
  router_.add({"GET", "/ui", true, {}, [](HttpRequest&, const RequestContext&, Respond respond) {
                 HttpResponse r;
                 r.content_type = "text/html; charset=utf-8";
                 r.body = kUiPage;
                 respond(std::move(r));
               }});
  router_.add({"GET",
               "/ui/records",
               false,
               {},
               [this](HttpRequest&, const RequestContext&, Respond respond) {
                 respond(json_response(200, client::Json{{"records", ui_records()}}));
               }});
  router_.add({"POST",
               "/ui/predict",
               false,
               {"multipart/form-data", "application/json"},
               [this](HttpRequest& request, const RequestContext& ctx, Respond respond) {
                 post_ui_predict(request, ctx, std::move(respond));
               }});
}

void Gateway::post_ui_predict(HttpRequest& request, const RequestContext& ctx, Respond respond) {
  auto req = std::make_shared<HttpRequest>(std::move(request));
  auto work = [this, req, ctx, respond] {
    Expected<schema::Job> job = Status(ErrorCode::BadRequest, "no record", "record");
    std::string path;
    const std::string bundled = req->query_value("record");
    if (!bundled.empty()) {
      // Only a name the listing gave: never a path the client made up.
      const auto names = ui_records();
      if (std::find(names.begin(), names.end(), bundled) == names.end())
        return respond(error_response(
            "bad_request", "record " + bundled + " is not one of /ui/records", "record"));
      path = bundled;
      client::InputOptions options;
      job = client::job_from_path(config_.ui_records + "/" + bundled, options);
    } else {
      auto in = read_predict(*req, config_.upload_dir);
      if (in) {
        path = in->path;
        job = std::move(in->job);
      } else {
        job = in.status();
      }
    }
    if (!job) {
      const Status s = job.status();
      return respond(error_response(s.code(), s.message(), s.field()));
    }
    auto record = record_json(*job);
    if (!record) {
      const Status s = record.status();
      return respond(error_response(s.code(), s.message(), s.field()));
    }
    job->id = new_job_id();
    job->outputs = kUiOutputs;
    auto drawn = std::make_shared<client::Json>(std::move(*record));
    const bool queued = submit(std::move(*job), ctx, [respond, path, drawn](schema::Result r) {
      if (r.status != "ok") {
        const schema::ErrorInfo e =
            r.error.value_or(schema::ErrorInfo{"internal", "no error given", "", {}});
        return respond(error_response(e.code, e.message, e.field, e.retry_after_ms, r.id));
      }
      respond(
          json_response(200, client::Json{{"record", std::move(*drawn)},
                                          {"result", client::result_json(path, r, kUiOutputs)}}));
    });
    if (!queued) respond(error_response("busy", "too many requests in flight; retry later"));
  };
  boost::asio::post(*pool_, std::move(work));
}

}  // namespace ecgq::gateway
