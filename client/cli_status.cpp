// `ecgq status`: the broker's mmi.status, readable or as JSON, and a health check.
#include <cstdio>
#include <iostream>
#include <string>

#include "client/cli.hpp"
#include "client/json_output.hpp"

namespace ecgq::client {

namespace {

std::string text(const Json& j, const char* key, const std::string& fallback = "?") {
  if (!j.contains(key)) return fallback;
  const Json& v = j.at(key);
  if (v.is_string()) return v.get<std::string>();
  if (v.is_number_float()) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.1f", v.get<double>());
    return buf;
  }
  return v.dump();
}

int64_t integer(const Json& j, const char* key, int64_t fallback = 0) {
  return j.contains(key) && j.at(key).is_number() ? j.at(key).get<int64_t>() : fallback;
}

// A fraction in [0, 1] as "12.5%".
std::string percent(const Json& j, const char* key) {
  const double v = j.contains(key) && j.at(key).is_number() ? j.at(key).get<double>() : 0.0;
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f%%", 100.0 * v);
  return buf;
}

std::string bytes(int64_t b) {
  if (b < 0) return "?";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f MiB", static_cast<double>(b) / (1024.0 * 1024.0));
  return buf;
}

std::string age(int64_t ms) {
  char buf[32];
  if (ms < 60000) {
    std::snprintf(buf, sizeof buf, "%.1fs", static_cast<double>(ms) / 1000.0);
  } else {
    std::snprintf(buf, sizeof buf, "%lldm%llds", static_cast<long long>(ms / 60000),
                  static_cast<long long>((ms % 60000) / 1000));
  }
  return buf;
}

void print_readable(const std::string& broker, const Json& s) {
  std::cout << "broker " << broker << "  up " << age(integer(s, "uptime_ms"))
            << (s.value("shutting_down", false) ? "  SHUTTING DOWN" : "") << "\n";
  if (s.contains("services") && s["services"].is_object()) {
    for (const auto& [name, svc] : s["services"].items()) {
      const size_t n_workers = svc.contains("workers") ? svc["workers"].size() : 0;
      std::cout << "service " << name << ": queued " << integer(svc, "queued") << ", in flight "
                << integer(svc, "in_flight") << ", clients waiting "
                << integer(svc, "clients_waiting") << ", workers " << n_workers << ", mean service "
                << text(svc, "service_ms", "0") << " ms\n";
      if (!svc.contains("workers")) continue;
      for (const auto& w : svc["workers"]) {
        std::cout << "  worker " << text(w, "id") << "  state " << text(w, "state")
                  << "  in flight " << integer(w, "in_flight") << "/" << integer(w, "capacity", 1)
                  << "  rss " << bytes(integer(w, "rss_bytes", -1)) << "  jobs done "
                  << integer(w, "jobs_done") << "  last heard "
                  << age(integer(w, "last_heartbeat_ms")) << " ago"
                  << (w.value("keep_warm", false) ? "  keep-warm" : "") << "\n";
      }
    }
  }
  if (s.contains("counters") && s["counters"].is_object()) {
    const Json& c = s["counters"];
    std::cout << "jobs: received " << integer(c, "received") << ", dispatched "
              << integer(c, "dispatched") << ", completed " << integer(c, "completed")
              << ", re-dispatched " << integer(c, "redispatched");
    if (c.contains("errors") && c["errors"].is_object() && !c["errors"].empty()) {
      std::cout << ", errors";
      for (const auto& [code, n] : c["errors"].items()) std::cout << " " << code << "=" << n.dump();
    }
    std::cout << "\n";
  }
  if (s.contains("result_cache") && s["result_cache"].is_object()) {
    const Json& rc = s["result_cache"];
    if (!rc.value("enabled", false)) {
      std::cout << "result cache: off\n";
    } else {
      std::cout << "result cache: " << integer(rc, "entries") << " entries, "
                << bytes(integer(rc, "bytes", -1)) << ", hits " << integer(rc, "hits")
                << ", misses " << integer(rc, "misses") << ", hit rate " << percent(rc, "hit_rate")
                << "\n";
    }
  }
}

}  // namespace

int run_status(const StatusCommand& command) {
  Client client(command.client);
  if (command.check) {
    auto up = client.service_available(command.client.service, command.client.timeout);
    if (!up) {
      std::fprintf(stderr, "ecgq: error: %s\n", up.status().message().c_str());
      return kExitFailed;
    }
    if (!*up) {
      std::fprintf(stderr, "ecgq: service %s has no live worker (mmi.service 404)\n",
                   command.client.service.c_str());
      return kExitFailed;
    }
    std::fprintf(stderr, "ecgq: service %s is available\n", command.client.service.c_str());
    return kExitOk;
  }
  auto body = client.status(command.client.timeout);
  if (!body) {
    std::fprintf(stderr, "ecgq: error: %s\n", body.status().message().c_str());
    return kExitFailed;
  }
  auto json = msgpack_json(*body);
  if (!json) {
    std::fprintf(stderr, "ecgq: error: mmi.status reply: %s\n", json.status().message().c_str());
    return kExitFailed;
  }
  if (command.json) {
    std::cout << json->dump(2) << std::endl;
  } else {
    print_readable(command.client.broker, *json);
  }
  return kExitOk;
}

}  // namespace ecgq::client
