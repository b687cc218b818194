// The broker's settings: declared once here so --help, config/broker.yaml, ECGQ_* variables and
// flags all list the same keys with the same defaults.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/duration.hpp"
#include "common/settings.hpp"
#include "common/status.hpp"

namespace ecgq::broker {

// Typed broker configuration, read from a Settings after every layer was merged.
struct BrokerConfig {
  std::string bind = "tcp://*:5555";
  std::string worker_bind;  // optional second ROUTER for workers only
  Millis heartbeat_interval{2500};
  int64_t heartbeat_liveness = 3;
  int64_t max_queue = 10000;
  int64_t max_queue_per_client = 1000;
  int64_t max_attempts = 3;
  Millis service_wait{60000};
  int64_t max_message_bytes = int64_t{128} << 20;
  int64_t keep_warm = 0;
  std::vector<std::string> ecgq_services{"ecg-fm"};
  Millis shutdown_grace{5000};
  std::string log_level = "info";
  int64_t result_cache_entries = 10000;             // 0 disables the result cache
  int64_t result_cache_bytes = int64_t{256} << 20;  // bytes of cached results at most
  Millis result_cache_ttl{3600000};                 // lifetime of one cached result
  std::string journal;                              // durable journal file; "" = in memory only
  int64_t journal_max_bytes = int64_t{2} << 30;     // journal_full beyond this
  Millis result_ttl{3600000};                       // how long results stay readable by job id
  int64_t result_store_bytes = int64_t{256} << 20;  // bytes of results kept by job id at most

  // Time without traffic after which a worker counts as gone.
  Millis worker_expiry() const { return heartbeat_interval * heartbeat_liveness; }
  // True when `service` carries ecgq job bodies.
  bool is_ecgq(const std::string& service) const;
};

// Declares every broker setting with its default and help line.
void declare_settings(Settings& settings);
// Reads and range-checks the typed configuration; errors are bad_config naming the key.
Expected<BrokerConfig> load_config(const Settings& settings);

}  // namespace ecgq::broker
