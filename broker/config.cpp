#include "broker/config.hpp"

#include <algorithm>

namespace ecgq::broker {

bool BrokerConfig::is_ecgq(const std::string& service) const {
  return std::find(ecgq_services.begin(), ecgq_services.end(), service) != ecgq_services.end();
}

void declare_settings(Settings& s) {
  s.declare("bind", "tcp://*:5555", "ROUTER endpoint for clients and workers");
  s.declare("worker_bind", "", "optional second ROUTER endpoint for workers");
  s.declare("heartbeat_interval", "2500ms", "MDP heartbeat interval (must match the workers)");
  s.declare("heartbeat_liveness", "3", "heartbeats a worker may miss before it counts as lost");
  s.declare("max_queue", "10000", "queued jobs per service before queue_full");
  s.declare("max_queue_per_client", "1000", "queued jobs per client per service before queue_full");
  s.declare("max_attempts", "3", "dispatches of one job before worker_lost");
  s.declare("service_wait", "60s", "how long a job waits for a service with no live worker");
  s.declare("max_message_bytes", "128MiB", "largest accepted message (message_too_large)");
  s.declare("keep_warm", "0", "workers per ecgq service told to stay warm");
  s.declare("ecgq_services", "ecg-fm", "services whose bodies are ecgq msgpack jobs");
  s.declare("shutdown_grace", "5s", "time in-flight jobs get to finish on SIGTERM");
  s.declare("log_level", "info", "trace, debug, info, warn or error");
  s.declare("result_cache_entries", "10000", "results kept in the result cache (0 disables it)");
  s.declare("result_cache_bytes", "256MiB", "bytes of results kept in the result cache");
  s.declare("result_cache_ttl", "1h", "how long a cached result may be served");
  s.declare("journal", "", "durable journal file (SQLite); \"\" keeps jobs in memory only");
  s.declare("journal_max_bytes", "2GiB", "journal size beyond which new jobs get journal_full");
  s.declare("result_ttl", "1h", "how long results stay readable by job id (mmi.job)");
  s.declare("result_store_bytes", "256MiB", "bytes of results kept by job id at most");
}

namespace {

Status out_of_range(const Settings& s, const std::string& key, const std::string& expected) {
  return Status("bad_config",
                "setting " + key + " = '" + s.text(key) + "' (from " + s.origin(key) +
                    "): expected " + expected,
                key);
}

}  // namespace

Expected<BrokerConfig> load_config(const Settings& s) {
  BrokerConfig c;
  c.bind = s.text("bind");
  c.worker_bind = s.text("worker_bind");
  if (c.bind.empty()) return out_of_range(s, "bind", "an endpoint such as tcp://*:5555");
  struct Dur {
    const char* key;
    Millis* out;
  };
  for (const Dur& d :
       {Dur{"heartbeat_interval", &c.heartbeat_interval}, Dur{"service_wait", &c.service_wait},
        Dur{"shutdown_grace", &c.shutdown_grace}, Dur{"result_cache_ttl", &c.result_cache_ttl},
        Dur{"result_ttl", &c.result_ttl}}) {
    auto v = s.duration(d.key);
    if (!v) return v.status();
    *d.out = *v;
  }
  if (c.heartbeat_interval.count() <= 0)
    return out_of_range(s, "heartbeat_interval", "a positive duration");
  if (c.result_cache_ttl.count() <= 0)
    return out_of_range(s, "result_cache_ttl", "a positive duration");
  struct Int {
    const char* key;
    int64_t* out;
    int64_t min;
  };
  for (const Int& i :
       {Int{"heartbeat_liveness", &c.heartbeat_liveness, 1}, Int{"max_queue", &c.max_queue, 1},
        Int{"max_queue_per_client", &c.max_queue_per_client, 1},
        Int{"max_attempts", &c.max_attempts, 1}, Int{"keep_warm", &c.keep_warm, 0},
        Int{"result_cache_entries", &c.result_cache_entries, 0}}) {
    auto v = s.integer(i.key);
    if (!v) return v.status();
    if (*v < i.min) return out_of_range(s, i.key, "an integer >= " + std::to_string(i.min));
    *i.out = *v;
  }
  auto bytes = s.bytes("max_message_bytes");
  if (!bytes) return bytes.status();
  if (*bytes < 1024) return out_of_range(s, "max_message_bytes", "at least 1KiB");
  c.max_message_bytes = *bytes;
  auto cache_bytes = s.bytes("result_cache_bytes");
  if (!cache_bytes) return cache_bytes.status();
  if (*cache_bytes < 1024) return out_of_range(s, "result_cache_bytes", "at least 1KiB");
  c.result_cache_bytes = *cache_bytes;
  for (auto [key, out] : {std::pair{"journal_max_bytes", &c.journal_max_bytes},
                          std::pair{"result_store_bytes", &c.result_store_bytes}}) {
    auto b = s.bytes(key);
    if (!b) return b.status();
    if (*b < 1024) return out_of_range(s, key, "at least 1KiB");
    *out = *b;
  }
  c.journal = s.text("journal");
  c.ecgq_services = s.list("ecgq_services");
  c.log_level = s.text("log_level");
  static const char* const kLevels[] = {"trace", "debug", "info", "warn", "error"};
  if (std::none_of(std::begin(kLevels), std::end(kLevels),
                   [&](const char* l) { return c.log_level == l; }))
    return out_of_range(s, "log_level", "trace, debug, info, warn or error");
  return c;
}

}  // namespace ecgq::broker
