// The broker's own Prometheus counters and histograms (jobs by outcome, re-dispatches, cold
// starts, journal records, the job phases results report), kept per service by the core as jobs
// finish. Gauges of the current state (queues, workers, cache, journal size) are read from the
// core itself when /metrics is scraped (core_metrics.cpp). docs/metrics.md lists every metric.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <utility>

#include "common/prometheus.hpp"
#include "protocol/schema.hpp"

namespace ecgq::broker {

// Counters since the broker started; single-threaded (the core's thread).
class BrokerMetrics {
 public:
  // A FINAL sent for a job of `service`: "ok" or its error code.
  void job_finished(const std::string& service, const std::string& outcome);
  // The phases a worker's result reports (its timings), and whether it was a cold start.
  void job_timings(const std::string& service, const schema::Timings& timings, bool cold_start);
  // A job of `service` queued again after its worker was lost.
  void redispatched(const std::string& service);
  // A record handed to the journal.
  void journal_record() { ++journal_records_; }
  // Writes every family this class keeps.
  void render(prometheus::TextWriter& out) const;

 private:
  std::map<std::pair<std::string, std::string>, uint64_t> jobs_;  // (service, outcome)
  std::map<std::string, uint64_t> redispatches_;                  // by service
  std::map<std::string, uint64_t> cold_starts_;                   // by service
  std::map<std::pair<std::string, std::string>, prometheus::Histogram> phases_;  // (service, phase)
  uint64_t journal_records_ = 0;
};

}  // namespace ecgq::broker
