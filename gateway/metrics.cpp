#include "gateway/metrics.hpp"

#include <cstdio>
#include <sstream>

namespace ecgq::gateway {

namespace {

std::string number(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.15g", v);
  return buf;
}

}  // namespace

const std::vector<double>& Metrics::buckets() {
  static const std::vector<double> b = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                        0.5,   1,      2.5,   5,    10,    30,   60,  300};
  return b;
}

std::string escape_label(const std::string& value) {
  std::string out;
  for (char c : value) {
    if (c == '\\')
      out += "\\\\";
    else if (c == '"')
      out += "\\\"";
    else if (c == '\n')
      out += "\\n";
    else
      out.push_back(c);
  }
  return out;
}

void Metrics::observe_request(const std::string& endpoint, const std::string& method, int status,
                              double seconds) {
  std::lock_guard<std::mutex> lock(mutex_);
  ++requests_[{endpoint, method, status}];
  Histogram& h = durations_[endpoint];
  if (h.counts.empty()) h.counts.assign(buckets().size() + 1, 0);
  size_t i = 0;
  while (i < buckets().size() && seconds > buckets()[i]) ++i;
  ++h.counts[i];
  h.sum += seconds;
  ++h.count;
}

void Metrics::observe_job(const std::string& outcome) {
  std::lock_guard<std::mutex> lock(mutex_);
  ++jobs_[outcome];
}

std::string Metrics::render(const std::vector<Gauge>& gauges) const {
  std::ostringstream out;
  std::lock_guard<std::mutex> lock(mutex_);
  out << "# HELP ecgq_gateway_http_requests_total HTTP requests answered, by endpoint (route "
         "pattern), method and status code.\n"
         "# TYPE ecgq_gateway_http_requests_total counter\n";
  for (const auto& [key, n] : requests_) {
    const auto& [endpoint, method, code] = key;
    out << "ecgq_gateway_http_requests_total{endpoint=\"" << escape_label(endpoint)
        << "\",method=\"" << escape_label(method) << "\",code=\"" << code << "\"} " << n << "\n";
  }
  out << "# HELP ecgq_gateway_http_request_duration_seconds Time from a request's complete "
         "arrival to its answer, by endpoint.\n"
         "# TYPE ecgq_gateway_http_request_duration_seconds histogram\n";
  for (const auto& [endpoint, h] : durations_) {
    const std::string label = "endpoint=\"" + escape_label(endpoint) + "\"";
    uint64_t cumulative = 0;
    for (size_t i = 0; i < buckets().size(); ++i) {
      cumulative += h.counts[i];
      out << "ecgq_gateway_http_request_duration_seconds_bucket{" << label << ",le=\""
          << number(buckets()[i]) << "\"} " << cumulative << "\n";
    }
    out << "ecgq_gateway_http_request_duration_seconds_bucket{" << label << ",le=\"+Inf\"} "
        << h.count << "\n";
    out << "ecgq_gateway_http_request_duration_seconds_sum{" << label << "} " << number(h.sum)
        << "\n";
    out << "ecgq_gateway_http_request_duration_seconds_count{" << label << "} " << h.count << "\n";
  }
  out << "# HELP ecgq_gateway_jobs_total Jobs the gateway submitted that finished, by outcome "
         "(ok or the error code).\n"
         "# TYPE ecgq_gateway_jobs_total counter\n";
  for (const auto& [outcome, n] : jobs_)
    out << "ecgq_gateway_jobs_total{outcome=\"" << escape_label(outcome) << "\"} " << n << "\n";
  for (const auto& g : gauges) {
    out << "# HELP " << g.name << " " << g.help << "\n# TYPE " << g.name << " " << g.type << "\n"
        << g.name << " " << number(g.value) << "\n";
  }
  return out.str();
}

}  // namespace ecgq::gateway
