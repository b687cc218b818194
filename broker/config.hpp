// The broker's settings: one table (broker/config.cpp) holds each key, default, type and help, so
// --help, config/broker.yaml, ECGQ_* variables, flags and BrokerConfig's defaults all agree
// (tests/test_settings_tables.cpp checks the YAML file and --help against it).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "common/duration.hpp"
#include "common/settings.hpp"
#include "common/settings_table.hpp"
#include "common/status.hpp"

namespace ecgq::broker {

// Typed broker configuration, read from a Settings after every layer was merged. One field per
// setting of the table; what each means is its help line there.
struct BrokerConfig {
  // Every field at its default from the settings table.
  BrokerConfig();

  std::string bind;
  std::string worker_bind;  // optional second ROUTER for workers only
  Millis heartbeat_interval{};
  int64_t heartbeat_liveness = 0;
  int64_t max_queue = 0;
  int64_t max_queue_per_client = 0;
  int64_t max_queued_bytes = 0;  // queued body bytes across every service at most
  int64_t max_services = 0;      // services the broker knows at most
  int64_t max_attempts = 0;
  Millis service_wait{};
  int64_t max_message_bytes = 0;
  int64_t keep_warm = 0;
  std::vector<std::string> ecgq_services;
  std::vector<std::string> pinned_precision;          // "SERVICE=PRECISION" entries, as configured
  std::map<std::string, std::string> precision_pins;  // from pinned_precision, by service
  Millis shutdown_grace{};
  std::string log_level;
  int64_t result_cache_entries = 0;  // 0 disables the result cache
  int64_t result_cache_bytes = 0;    // bytes of cached results at most
  Millis result_cache_ttl{};         // lifetime of one cached result
  std::string result_cache_scope;    // "key": a hit answers only the CURVE key that computed it
  std::string journal;               // durable journal file; "" = in memory only
  int64_t journal_max_bytes = 0;     // journal_full beyond this
  std::string journal_sync;          // "full" (fsync every commit) or "normal" (no fsync)
  Millis result_ttl{};               // how long results stay readable by job id
  int64_t result_store_bytes = 0;    // bytes of results kept by job id at most
  std::string metrics_bind;          // HOST:PORT of GET /metrics; "" = none
  std::string curve_secret_cert;     // the broker's secret certificate; "" = CURVE off
  std::string client_keys;           // directory of client public certificates
  std::string worker_keys;           // directory of worker public certificates
  std::string admin_keys;            // directory of admin public certificates
  bool allow_insecure = false;       // plaintext on non-loopback addresses allowed

  // True when the broker runs CURVE (every connection encrypted and authenticated).
  bool curve() const { return !curve_secret_cert.empty(); }
  Millis max_job_time{};             // a dispatched job not finished by then is taken back
  std::vector<std::string> service_max_job_time;  // "SERVICE=DURATION" overrides, as written
  std::map<std::string, Millis> max_job_time_by_service;  // the overrides, parsed on load
  int64_t max_worker_capacity = 0;                        // credit cap whatever a worker advertises
  int64_t max_worker_failures = 0;  // worker-side failures in a row before out of dispatch
  int64_t dead_letter_max = 0;      // jobs kept in the dead-letter list at most

  // Time without traffic after which a worker counts as gone.
  Millis worker_expiry() const { return heartbeat_interval * heartbeat_liveness; }
  // The max_job_time of `service`: its override, else the global one.
  Millis job_time_limit(const std::string& service) const;
  // True when `service` carries ecgq job bodies.
  bool is_ecgq(const std::string& service) const;
};

// The broker's settings table: every key with its default, type and help line.
const SettingsTable<BrokerConfig>& settings_table();
// Declares every broker setting with its default and help line.
void declare_settings(Settings& settings);
// Reads and range-checks the typed configuration; errors are bad_config naming the key.
Expected<BrokerConfig> load_config(const Settings& settings);

}  // namespace ecgq::broker
