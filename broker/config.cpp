#include "broker/config.hpp"

#include <algorithm>

#include "protocol/endpoint.hpp"

namespace ecgq::broker {

bool BrokerConfig::is_ecgq(const std::string& service) const {
  return std::find(ecgq_services.begin(), ecgq_services.end(), service) != ecgq_services.end();
}

const SettingsTable<BrokerConfig>& settings_table() {
  using C = BrokerConfig;
  static const SettingsTable<C> table =
      SettingsTable<C>()
          .text("bind", "tcp://*:5555", "ROUTER endpoint for clients and workers", &C::bind)
          .text("worker_bind", "", "optional second ROUTER endpoint for workers", &C::worker_bind)
          .duration("heartbeat_interval", "2500ms",
                    "MDP heartbeat interval (must match the workers)", &C::heartbeat_interval)
          .integer("heartbeat_liveness", "3",
                   "heartbeats a worker may miss before it counts as lost", &C::heartbeat_liveness)
          .integer("max_queue", "10000", "queued jobs per service before queue_full", &C::max_queue)
          .integer("max_queue_per_client", "1000",
                   "queued jobs per client per service before queue_full", &C::max_queue_per_client)
          .bytes("max_queued_bytes", "1GiB",
                 "queued job bytes across all services before queue_full", &C::max_queued_bytes)
          .integer("max_services", "64", "services the broker knows before queue_full",
                   &C::max_services)
          .integer("max_attempts", "3", "dispatches of one job before worker_lost",
                   &C::max_attempts)
          .duration("service_wait", "60s", "how long a job waits for a service with no live worker",
                    &C::service_wait)
          .bytes("max_message_bytes", "128MiB", "largest accepted message (message_too_large)",
                 &C::max_message_bytes)
          .integer("keep_warm", "0", "workers per ecgq service told to stay warm", &C::keep_warm)
          .list("ecgq_services", "ecg-fm", "services whose bodies are ecgq msgpack jobs",
                &C::ecgq_services)
          .duration("shutdown_grace", "5s", "time in-flight jobs get to finish on SIGTERM",
                    &C::shutdown_grace)
          .text("log_level", "info", "trace, debug, info, warn or error", &C::log_level)
          .integer("result_cache_entries", "10000",
                   "results kept in the result cache (0 disables it)", &C::result_cache_entries)
          .bytes("result_cache_bytes", "256MiB", "bytes of results kept in the result cache",
                 &C::result_cache_bytes)
          .duration("result_cache_ttl", "1h", "how long a cached result may be served",
                    &C::result_cache_ttl)
          .text("journal", "", "durable journal file (SQLite); \"\" keeps jobs in memory only",
                &C::journal)
          .bytes("journal_max_bytes", "2GiB", "journal size beyond which new jobs get journal_full",
                 &C::journal_max_bytes)
          .duration("result_ttl", "1h", "how long results stay readable by job id (mmi.job)",
                    &C::result_ttl)
          .bytes("result_store_bytes", "256MiB", "bytes of results kept by job id at most",
                 &C::result_store_bytes)
          .text("metrics_bind", "",
                "HOST:PORT serving Prometheus GET /metrics over HTTP (\"\" = none)",
                &C::metrics_bind);
  return table;
}

BrokerConfig::BrokerConfig() {
  settings_table().read_defaults(*this);
}

void declare_settings(Settings& s) {
  settings_table().declare(s);
}

namespace {

// The range checks that the types alone do not make.
Status check_ranges(const Settings& s, const BrokerConfig& c) {
  if (c.bind.empty()) return s.invalid("bind", "an endpoint such as tcp://*:5555");
  RETURN_IF_ERROR(mdp::check_endpoint(c.bind, mdp::EndpointUse::Bind, "--bind"));
  if (!c.worker_bind.empty())
    RETURN_IF_ERROR(mdp::check_endpoint(c.worker_bind, mdp::EndpointUse::Bind, "--worker-bind"));
  if (c.heartbeat_interval.count() <= 0)
    return s.invalid("heartbeat_interval", "a positive duration");
  if (c.result_cache_ttl.count() <= 0) return s.invalid("result_cache_ttl", "a positive duration");
  RETURN_IF_ERROR(s.check_minimums({{"heartbeat_liveness", c.heartbeat_liveness, 1},
                                    {"max_queue", c.max_queue, 1},
                                    {"max_queue_per_client", c.max_queue_per_client, 1},
                                    {"max_services", c.max_services, 1},
                                    {"max_attempts", c.max_attempts, 1},
                                    {"keep_warm", c.keep_warm, 0},
                                    {"result_cache_entries", c.result_cache_entries, 0}},
                                   "an integer >= "));
  if (c.max_message_bytes < 1024) return s.invalid("max_message_bytes", "at least 1KiB");
  if (c.max_queued_bytes < 1024) return s.invalid("max_queued_bytes", "at least 1KiB");
  if (c.result_cache_bytes < 1024) return s.invalid("result_cache_bytes", "at least 1KiB");
  if (c.journal_max_bytes < 1024) return s.invalid("journal_max_bytes", "at least 1KiB");
  if (c.result_store_bytes < 1024) return s.invalid("result_store_bytes", "at least 1KiB");
  static const char* const kLevels[] = {"trace", "debug", "info", "warn", "error"};
  if (std::none_of(std::begin(kLevels), std::end(kLevels),
                   [&](const char* l) { return c.log_level == l; }))
    return s.invalid("log_level", "trace, debug, info, warn or error");
  return Status::Ok();
}

}  // namespace

Expected<BrokerConfig> load_config(const Settings& s) {
  BrokerConfig c;
  RETURN_IF_ERROR(settings_table().read(s, c));
  RETURN_IF_ERROR(check_ranges(s, c));
  return c;
}

}  // namespace ecgq::broker
