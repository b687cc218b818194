// The gateway's Prometheus metrics (text exposition format 0.0.4): requests by endpoint, method
// and status, a request duration histogram by endpoint, jobs by outcome, and gauges read at
// scrape time. docs/metrics.md lists them with Triton's nearest names.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <tuple>
#include <vector>

#include "common/prometheus.hpp"

namespace ecgq::gateway {

// A value read when /metrics is scraped.
struct Gauge {
  std::string name;  // full name, ecgq_ prefix included
  std::string help;
  std::string type;  // "gauge" or "counter"
  double value = 0;
};

// Counters and histograms; every method is thread-safe.
class Metrics {
 public:
  // Counts one answered request; `endpoint` is a route pattern (bounded cardinality).
  void observe_request(const std::string& endpoint, const std::string& method, int status,
                       double seconds);
  // Counts one finished job by outcome ("ok" or its error code).
  void observe_job(const std::string& outcome);
  // The exposition text: the counters and histograms, then `gauges`.
  std::string render(const std::vector<Gauge>& gauges) const;

 private:
  mutable std::mutex mutex_;
  std::map<std::tuple<std::string, std::string, int>, uint64_t> requests_;
  std::map<std::string, prometheus::Histogram> durations_;
  std::map<std::string, uint64_t> jobs_;
};

using prometheus::escape_label;

}  // namespace ecgq::gateway
