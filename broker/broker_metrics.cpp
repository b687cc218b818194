#include "broker/broker_metrics.hpp"

namespace ecgq::broker {

using prometheus::duration_buckets;

namespace {

// The phases of schema::Timings that become histograms, by their label.
constexpr std::pair<const char*, double schema::Timings::*> kPhases[] = {
    {"queued", &schema::Timings::queued_ms}, {"wake", &schema::Timings::wake_ms},
    {"load", &schema::Timings::load_ms},     {"preprocess", &schema::Timings::preprocess_ms},
    {"infer", &schema::Timings::infer_ms},   {"total", &schema::Timings::total_ms}};

}  // namespace

void BrokerMetrics::job_finished(const std::string& service, const std::string& outcome) {
  ++jobs_[{service, outcome}];
}

void BrokerMetrics::job_timings(const std::string& service, const schema::Timings& timings,
                                bool cold_start) {
  for (const auto& [phase, field] : kPhases) {
    // Wake and load happen only on cold starts: a warm job is not a zero-second wake.
    const double ms = timings.*field;
    if ((field == &schema::Timings::wake_ms || field == &schema::Timings::load_ms) && ms <= 0)
      continue;
    phases_[{service, phase}].observe(ms / 1000.0, duration_buckets());
  }
  if (cold_start) ++cold_starts_[service];
}

void BrokerMetrics::redispatched(const std::string& service) {
  ++redispatches_[service];
}

void BrokerMetrics::render(prometheus::TextWriter& out) const {
  out.family("ecgq_jobs_total", "counter",
             "Jobs answered (FINALs sent), by service and outcome (ok or the error code).");
  for (const auto& [key, n] : jobs_)
    out.sample("ecgq_jobs_total", {{"service", key.first}, {"outcome", key.second}},
               static_cast<double>(n));
  out.family("ecgq_redispatches_total", "counter",
             "Jobs queued again after their worker was lost, by service.");
  for (const auto& [service, n] : redispatches_)
    out.sample("ecgq_redispatches_total", {{"service", service}}, static_cast<double>(n));
  out.family(
      "ecgq_cold_starts_total", "counter",
      "Jobs whose worker had to load its model first (results with cold_start), by service.");
  for (const auto& [service, n] : cold_starts_)
    out.sample("ecgq_cold_starts_total", {{"service", service}}, static_cast<double>(n));
  out.family("ecgq_job_phase_seconds", "histogram",
             "Time jobs spent in each phase their results report (queued, wake, load, preprocess, "
             "infer, total), by service; wake and load only for cold starts.");
  for (const auto& [key, h] : phases_)
    out.histogram("ecgq_job_phase_seconds", {{"service", key.first}, {"phase", key.second}}, h,
                  duration_buckets());
  out.family("ecgq_journal_records_total", "counter",
             "Records handed to the journal (accepts, dispatches, results, deletions).");
  out.sample("ecgq_journal_records_total", {}, static_cast<double>(journal_records_));
}

}  // namespace ecgq::broker
