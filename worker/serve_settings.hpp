// The settings of `ecgq-worker serve`: one table of key, default, type and help (the hub_*
// settings are hub/hub_settings.hpp's), read into ServeSettings; worker/main.cpp turns those into
// the service, lifecycle and runner options. config/worker.yaml and `serve --help` are checked
// against the table by tests/test_settings_tables.cpp.
#pragma once

#include <cstdint>
#include <string>

#include "common/duration.hpp"
#include "common/settings.hpp"
#include "common/settings_table.hpp"

namespace ecgq {

// One field per serve setting, as typed values; what each means is its help line in the table.
struct ServeSettings {
  // Every field at its table default.
  ServeSettings();

  std::string broker;
  std::string curve_cert;
  std::string broker_key;
  std::string service;
  std::string checkpoint;
  std::string model_kind;
  std::string precision;
  int64_t bf16_split_layers = 0;
  Millis idle_timeout{};
  bool warm_on_start = false;
  Millis model_retry{};
  bool exit_on_load_failure = false;
  int64_t capacity = 0;
  int64_t max_batch = 0;
  int64_t max_batch_delay_ms = 0;
  int64_t threads = 0;
  Millis heartbeat_interval{};
  int64_t heartbeat_liveness = 0;
  Millis reconnect_min{};
  Millis reconnect_max{};
  double max_record_seconds = 0;
  std::string cache_dir;
  std::string worker_id;
  std::string log_level;
};

// The serve settings table (without the hub_* settings).
const SettingsTable<ServeSettings>& serve_settings_table();

// Declares every serve setting, then the hub_* settings.
void declare_serve_settings(Settings& settings);

}  // namespace ecgq
