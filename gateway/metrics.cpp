#include "gateway/metrics.hpp"

namespace ecgq::gateway {

using prometheus::duration_buckets;

void Metrics::observe_request(const std::string& endpoint, const std::string& method, int status,
                              double seconds) {
  std::lock_guard<std::mutex> lock(mutex_);
  ++requests_[{endpoint, method, status}];
  durations_[endpoint].observe(seconds, duration_buckets());
}

void Metrics::observe_job(const std::string& outcome) {
  std::lock_guard<std::mutex> lock(mutex_);
  ++jobs_[outcome];
}

std::string Metrics::render(const std::vector<Gauge>& gauges) const {
  prometheus::TextWriter out;
  std::lock_guard<std::mutex> lock(mutex_);
  out.family("ecgq_gateway_http_requests_total", "counter",
             "HTTP requests answered, by endpoint (route pattern), method and status code.");
  for (const auto& [key, n] : requests_) {
    const auto& [endpoint, method, code] = key;
    out.sample("ecgq_gateway_http_requests_total",
               {{"endpoint", endpoint}, {"method", method}, {"code", std::to_string(code)}},
               static_cast<double>(n));
  }
  out.family("ecgq_gateway_http_request_duration_seconds", "histogram",
             "Time from a request's complete arrival to its answer, by endpoint.");
  for (const auto& [endpoint, h] : durations_)
    out.histogram("ecgq_gateway_http_request_duration_seconds", {{"endpoint", endpoint}}, h,
                  duration_buckets());
  out.family("ecgq_gateway_jobs_total", "counter",
             "Jobs the gateway submitted that finished, by outcome (ok or the error code).");
  for (const auto& [outcome, n] : jobs_)
    out.sample("ecgq_gateway_jobs_total", {{"outcome", outcome}}, static_cast<double>(n));
  for (const auto& g : gauges) {
    out.family(g.name, g.type, g.help);
    out.sample(g.name, {}, g.value);
  }
  return out.text();
}

}  // namespace ecgq::gateway
