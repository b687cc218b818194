#include "broker/config.hpp"

#include <algorithm>

#include "common/duration.hpp"
#include "protocol/endpoint.hpp"

namespace ecgq::broker {

bool BrokerConfig::is_ecgq(const std::string& service) const {
  return std::find(ecgq_services.begin(), ecgq_services.end(), service) != ecgq_services.end();
}

Millis BrokerConfig::job_time_limit(const std::string& service) const {
  auto it = max_job_time_by_service.find(service);
  return it == max_job_time_by_service.end() ? max_job_time : it->second;
}

const SettingsTable<BrokerConfig>& settings_table() {
  using C = BrokerConfig;
  static const SettingsTable<C> table =
      SettingsTable<C>()
          .text("bind", "tcp://127.0.0.1:5555", "ROUTER endpoint for clients and workers", &C::bind)
          .text("worker_bind", "", "optional second ROUTER endpoint for workers", &C::worker_bind)
          .duration("heartbeat_interval", "2500ms",
                    "MDP heartbeat interval (must match the workers)", &C::heartbeat_interval)
          .integer("heartbeat_liveness", "3",
                   "heartbeats a worker may miss before it counts as lost", &C::heartbeat_liveness)
          .integer("max_queue", "10000", "queued jobs per service before queue_full", &C::max_queue)
          .integer("max_queue_per_client", "1000",
                   "queued jobs per client (per CURVE key when keys are on) per service before "
                   "queue_full",
                   &C::max_queue_per_client)
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
          .list("pinned_precision", "",
                "SERVICE=PRECISION entries: workers of SERVICE must run that precision (fp32 or "
                "bf16); other services admit both",
                &C::pinned_precision)
          .duration("shutdown_grace", "5s", "time in-flight jobs get to finish on SIGTERM",
                    &C::shutdown_grace)
          .text("log_level", "info", "trace, debug, info, warn or error", &C::log_level)
          .integer("result_cache_entries", "10000",
                   "results kept in the result cache (0 disables it)", &C::result_cache_entries)
          .bytes("result_cache_bytes", "256MiB", "bytes of results kept in the result cache",
                 &C::result_cache_bytes)
          .duration("result_cache_ttl", "1h", "how long a cached result may be served",
                    &C::result_cache_ttl)
          .text("result_cache_scope", "key",
                "key: a cached result answers only the CURVE key whose job computed it (a hit "
                "would tell one key what another submitted); shared: any client",
                &C::result_cache_scope)
          .text("journal", "", "durable journal file (SQLite); \"\" keeps jobs in memory only",
                &C::journal)
          .bytes("journal_max_bytes", "2GiB", "journal size beyond which new jobs get journal_full",
                 &C::journal_max_bytes)
          .text("journal_sync", "full",
                "full: a commit is on disk (power-loss safe); normal: in the OS (kill -9 safe)",
                &C::journal_sync)
          .duration("result_ttl", "1h", "how long results stay readable by job id (mmi.job)",
                    &C::result_ttl)
          .bytes("result_store_bytes", "256MiB", "bytes of results kept by job id at most",
                 &C::result_store_bytes)
          .text("metrics_bind", "",
                "HOST:PORT serving Prometheus GET /metrics over HTTP (\"\" = none)",
                &C::metrics_bind)
          .text("curve_secret_cert", "",
                "the broker's CURVE secret certificate (ecgq keygen); \"\" = CURVE off",
                &C::curve_secret_cert)
          .text("client_keys", "", "directory of client public certificates (CURVE)",
                &C::client_keys)
          .text("worker_keys", "", "directory of worker public certificates (CURVE)",
                &C::worker_keys)
          .text("admin_keys", "",
                "directory of admin public certificates (any job, admin mmi.*; CURVE)",
                &C::admin_keys)
          .boolean("allow_insecure", "false",
                   "allow plaintext (no CURVE) on non-loopback addresses", &C::allow_insecure)
          .duration("max_job_time", "10min",
                    "a dispatched job not finished by then goes to another worker",
                    &C::max_job_time)
          .list("service_max_job_time", "", "per-service max_job_time overrides, SERVICE=DURATION",
                &C::service_max_job_time)
          .integer("max_worker_capacity", "8",
                   "jobs a worker holds at once, whatever it advertises", &C::max_worker_capacity)
          .integer("max_worker_failures", "3",
                   "worker-side failures in a row before the worker is out of dispatch",
                   &C::max_worker_failures)
          .integer("dead_letter_max", "100", "jobs kept in the dead-letter list (oldest go first)",
                   &C::dead_letter_max);
  return table;
}

BrokerConfig::BrokerConfig() {
  settings_table().read_defaults(*this);
}

void declare_settings(Settings& s) {
  settings_table().declare(s);
}

namespace {

// True when `endpoint` can only be reached from this host: ipc://, inproc://, or tcp:// on a
// loopback address (127.x.x.x, [::1], localhost).
bool loopback_only(const std::string& endpoint) {
  if (endpoint.rfind("ipc://", 0) == 0 || endpoint.rfind("inproc://", 0) == 0) return true;
  if (endpoint.rfind("tcp://", 0) != 0) return false;
  const std::string host = endpoint.substr(6, endpoint.rfind(':') - 6);
  return host.rfind("127.", 0) == 0 || host == "[::1]" || host == "::1" || host == "localhost";
}

// CURVE settings go together, and plaintext stays on loopback unless allow_insecure says so.
Status check_security(const Settings& s, const BrokerConfig& c) {
  const bool any_keys = !c.client_keys.empty() || !c.worker_keys.empty() || !c.admin_keys.empty();
  if (c.curve() && !any_keys)
    return s.invalid("client_keys",
                     "at least one of client_keys, worker_keys, admin_keys "
                     "with curve_secret_cert (else no peer could connect)");
  if (!c.curve() && any_keys)
    return s.invalid("curve_secret_cert",
                     "the broker's secret certificate when key directories "
                     "are given");
  if (c.curve() || c.allow_insecure) return Status::Ok();
  for (const auto& [key, endpoint] : {std::pair{"bind", &c.bind}, {"worker_bind", &c.worker_bind}})
    if (!endpoint->empty() && !loopback_only(*endpoint))
      return s.invalid(key,
                       "a loopback endpoint (tcp://127.0.0.1:PORT) without CURVE; set "
                       "curve_secret_cert and key directories, or allow_insecure: true");
  return Status::Ok();
}

// The range checks that the types alone do not make.
Status check_ranges(const Settings& s, const BrokerConfig& c) {
  if (c.bind.empty()) return s.invalid("bind", "an endpoint such as tcp://127.0.0.1:5555");
  // The endpoint's form first: "foo" is not an endpoint at all, before it is an insecure one.
  RETURN_IF_ERROR(mdp::check_endpoint(c.bind, mdp::EndpointUse::Bind, "--bind"));
  if (!c.worker_bind.empty())
    RETURN_IF_ERROR(mdp::check_endpoint(c.worker_bind, mdp::EndpointUse::Bind, "--worker-bind"));
  RETURN_IF_ERROR(check_security(s, c));
  if (c.heartbeat_interval.count() <= 0)
    return s.invalid("heartbeat_interval", "a positive duration");
  if (c.result_cache_ttl.count() <= 0) return s.invalid("result_cache_ttl", "a positive duration");
  if (c.result_cache_scope != "key" && c.result_cache_scope != "shared")
    return s.invalid("result_cache_scope", "key or shared");
  RETURN_IF_ERROR(s.check_minimums({{"heartbeat_liveness", c.heartbeat_liveness, 1},
                                    {"max_queue", c.max_queue, 1},
                                    {"max_queue_per_client", c.max_queue_per_client, 1},
                                    {"max_services", c.max_services, 1},
                                    {"max_attempts", c.max_attempts, 1},
                                    {"keep_warm", c.keep_warm, 0},
                                    {"result_cache_entries", c.result_cache_entries, 0},
                                    {"max_worker_capacity", c.max_worker_capacity, 1},
                                    {"max_worker_failures", c.max_worker_failures, 1},
                                    {"dead_letter_max", c.dead_letter_max, 0}},
                                   "an integer >= "));
  if (c.max_job_time.count() <= 0) return s.invalid("max_job_time", "a positive duration");
  if (c.max_message_bytes < 1024) return s.invalid("max_message_bytes", "at least 1KiB");
  if (c.max_queued_bytes < 1024) return s.invalid("max_queued_bytes", "at least 1KiB");
  if (c.result_cache_bytes < 1024) return s.invalid("result_cache_bytes", "at least 1KiB");
  if (c.journal_max_bytes < 1024) return s.invalid("journal_max_bytes", "at least 1KiB");
  if (c.result_store_bytes < 1024) return s.invalid("result_store_bytes", "at least 1KiB");
  if (c.journal_sync != "full" && c.journal_sync != "normal")
    return s.invalid("journal_sync", "full or normal");
  static const char* const kLevels[] = {"trace", "debug", "info", "warn", "error"};
  if (std::none_of(std::begin(kLevels), std::end(kLevels),
                   [&](const char* l) { return c.log_level == l; }))
    return s.invalid("log_level", "trace, debug, info, warn or error");
  return Status::Ok();
}

// service_max_job_time: each entry SERVICE=DURATION with a positive duration.
Status read_job_time_overrides(const Settings& s, BrokerConfig& c) {
  const std::string expected = "entries SERVICE=DURATION with a positive duration, e.g. ecg-fm=30s";
  for (const std::string& entry : c.service_max_job_time) {
    const size_t eq = entry.find('=');
    if (eq == 0 || eq == std::string::npos) return s.invalid("service_max_job_time", expected);
    auto limit = parse_duration(entry.substr(eq + 1));
    if (!limit || limit->count() <= 0) return s.invalid("service_max_job_time", expected);
    c.max_job_time_by_service[entry.substr(0, eq)] = *limit;
  }
  return Status::Ok();
}

}  // namespace

namespace {

// pinned_precision entries into precision_pins.
Status read_precision_pins(const Settings& s, BrokerConfig& c) {
  for (const auto& entry : c.pinned_precision) {
    const size_t eq = entry.find('=');
    const std::string service = entry.substr(0, eq);
    const std::string precision = eq == std::string::npos ? "" : entry.substr(eq + 1);
    if (service.empty() || (precision != "fp32" && precision != "bf16"))
      return s.invalid("pinned_precision", "SERVICE=fp32 or SERVICE=bf16 entries");
    c.precision_pins[service] = precision;
  }
  return Status::Ok();
}

}  // namespace

Expected<BrokerConfig> load_config(const Settings& s) {
  BrokerConfig c;
  RETURN_IF_ERROR(settings_table().read(s, c));
  RETURN_IF_ERROR(check_ranges(s, c));
  RETURN_IF_ERROR(read_precision_pins(s, c));
  RETURN_IF_ERROR(read_job_time_overrides(s, c));
  return c;
}

}  // namespace ecgq::broker
