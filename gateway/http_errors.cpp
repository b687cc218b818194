#include "gateway/http_errors.hpp"

#include <map>

namespace ecgq::gateway {

int http_status(const std::string& code) {
  static const std::map<std::string, int> kStatus = {{"bad_request", 400},
                                                     {"bad_shape", 400},
                                                     {"unsupported_dtype", 400},
                                                     {"missing_leads", 400},
                                                     {"too_short", 400},
                                                     {"too_long", 400},
                                                     {"bad_samples", 400},
                                                     {"unsupported_output", 400},
                                                     {"bad_record", 400},
                                                     {"unsupported_format", 400},
                                                     {"unsupported_record", 400},
                                                     {"not_found", 400},
                                                     {"bad_frame", 400},
                                                     {"unauthorized", 401},
                                                     {"forbidden", 403},
                                                     {"no_such_job", 404},
                                                     {"no_such_route", 404},
                                                     {"no_such_model", 404},
                                                     {"method_not_allowed", 405},
                                                     {"body_too_large", 413},
                                                     {"message_too_large", 413},
                                                     {"unsupported_media_type", 415},
                                                     {"queue_full", 429},
                                                     {"busy", 503},
                                                     {"no_worker", 503},
                                                     {"shutting_down", 503},
                                                     {"broker_unreachable", 503},
                                                     {"cancelled", 409},
                                                     {"deadline_exceeded", 504},
                                                     {"timeout", 504},
                                                     {"worker_lost", 502},
                                                     {"model_error", 502},
                                                     {"internal", 500}};
  auto it = kStatus.find(code);
  return it == kStatus.end() ? 500 : it->second;
}

HttpResponse json_response(int status, const client::Json& body) {
  HttpResponse r;
  r.status = status;
  r.body = client::json_line(body);
  return r;
}

HttpResponse error_response(const std::string& code, const std::string& message,
                            const std::string& field, std::optional<int64_t> retry_after_ms,
                            const std::string& job_id) {
  client::Json body;
  body["error"] = {{"code", code}, {"message", message}, {"field", field}};
  if (retry_after_ms) body["error"]["retry_after_ms"] = *retry_after_ms;
  if (!job_id.empty()) body["id"] = job_id;
  HttpResponse r = json_response(http_status(code), body);
  if (r.status == 429 || r.status == 503) {
    const int64_t ms = retry_after_ms.value_or(1000);
    r.with("Retry-After", std::to_string(std::max<int64_t>(1, (ms + 999) / 1000)));
  }
  if (r.status == 401) r.with("WWW-Authenticate", "Bearer realm=\"ecgq\"");
  return r;
}

}  // namespace ecgq::gateway
