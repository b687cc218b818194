// /metrics: the broker's state as Prometheus gauges (queues, workers, cache, journal) read at
// scrape time, followed by the counters and histograms BrokerMetrics keeps as jobs finish.
#include <map>

#include "broker/core.hpp"
#include "common/time.hpp"

namespace ecgq::broker {

namespace {

// States every service shows a series for, even at zero (so that rate() and alerts see them).
constexpr const char* kShownStates[] = {"cold", "warming", "warm", "busy", "asleep", "waking"};

}  // namespace

void BrokerCore::render_service_gauges(prometheus::TextWriter& out) const {
  out.family("ecgq_queue_depth", "gauge", "Jobs waiting in the broker, by service.");
  for (const auto& [name, svc] : services_)
    out.sample("ecgq_queue_depth", {{"service", name}}, static_cast<double>(svc.queue.size()));
  out.family("ecgq_queue_oldest_age_seconds", "gauge",
             "Age of the job waiting longest, by service (0 when nothing waits).");
  for (const auto& [name, svc] : services_) {
    const auto oldest = svc.queue.oldest_received();
    out.sample("ecgq_queue_oldest_age_seconds", {{"service", name}},
               oldest ? ms_between(*oldest, now_) / 1000.0 : 0.0);
  }
  out.family("ecgq_jobs_in_flight", "gauge", "Jobs dispatched to workers and not finished.");
  for (const auto& [name, svc] : services_)
    out.sample("ecgq_jobs_in_flight", {{"service", name}}, static_cast<double>(svc.in_flight));
}

void BrokerCore::render_worker_gauges(prometheus::TextWriter& out) const {
  std::map<std::string, std::map<std::string, int64_t>> by_state;  // service -> state -> n
  for (const auto& [name, svc] : services_)
    for (const char* state : kShownStates) by_state[name][state] = 0;
  for (const auto& [key, w] : workers_) ++by_state[w.service][w.shown_state()];
  out.family("ecgq_workers", "gauge",
             "Registered workers by service and state (busy: warm with jobs in flight).");
  for (const auto& [service, states] : by_state)
    for (const auto& [state, n] : states)
      out.sample("ecgq_workers", {{"service", service}, {"state", state}}, static_cast<double>(n));
  out.family("ecgq_worker_rss_bytes", "gauge",
             "Resident memory each worker last reported in its heartbeat.");
  for (const auto& [key, w] : workers_)
    if (w.rss_bytes >= 0)
      out.sample("ecgq_worker_rss_bytes", {{"service", w.service}, {"worker", w.worker_id}},
                 static_cast<double>(w.rss_bytes));
}

std::string BrokerCore::metrics_text() const {
  prometheus::TextWriter out;
  out.family("ecgq_broker_uptime_seconds", "gauge", "Time since the broker started.");
  out.sample("ecgq_broker_uptime_seconds", {}, ms_between(started_, now_) / 1000.0);
  out.family("ecgq_requests_received_total", "counter",
             "Client REQUESTs for services (mmi.* excluded).");
  out.sample("ecgq_requests_received_total", {}, static_cast<double>(counters_.received));
  render_service_gauges(out);
  render_worker_gauges(out);
  const ResultCacheStats& cache = cache_.stats();
  out.family("ecgq_result_cache_hits_total", "counter", "Jobs answered from the result cache.");
  out.sample("ecgq_result_cache_hits_total", {}, static_cast<double>(cache.hits));
  out.family("ecgq_result_cache_misses_total", "counter",
             "Result cache lookups that found nothing usable.");
  out.sample("ecgq_result_cache_misses_total", {}, static_cast<double>(cache.misses));
  out.family("ecgq_result_cache_bytes", "gauge", "Bytes of results the cache holds.");
  out.sample("ecgq_result_cache_bytes", {}, static_cast<double>(cache.bytes));
  if (durable_) {
    out.family("ecgq_journal_bytes", "gauge", "Size of the journal file and its WAL.");
    out.sample("ecgq_journal_bytes", {}, static_cast<double>(journal_.bytes));
    out.family("ecgq_journal_healthy", "gauge",
               "1 when the journal's last transaction committed, 0 when it could not be written.");
    out.sample("ecgq_journal_healthy", {}, journal_.healthy ? 1 : 0);
  }
  metrics_.render(out);
  return out.text();
}

}  // namespace ecgq::broker
