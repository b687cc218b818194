// `ecgq status`: the broker's mmi.status, readable or as JSON, and a health check.
#include <cmath>
#include <cstdio>
#include <iostream>
#include <string>

#include "client/cli.hpp"
#include "client/json_output.hpp"
#include "common/text.hpp"
#include "protocol/extensions.hpp"

namespace ecgq::client {

namespace {

// A float as the status has always printed it: integral values (msgpack-c sends those as
// integers) without decimals, others with one.
std::string number(double v) {
  char buf[32];
  if (v == std::floor(v) && std::fabs(v) < 1e15)
    std::snprintf(buf, sizeof buf, "%lld", static_cast<long long>(v));
  else
    std::snprintf(buf, sizeof buf, "%.1f", v);
  return buf;
}

// A fraction in [0, 1] as "12.5%".
std::string percent(double v) {
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

std::string or_unknown(const std::string& s) {
  return s.empty() ? "?" : s;
}

// "ab12cd34ef56 ecgfm fp32": a model as a worker line shows it (the JSON has the full sha256).
std::string short_model(const schema::ModelIdentity& m) {
  if (m.sha256.empty() && m.kind.empty()) return "?";
  std::string text = m.sha256.empty() ? "?" : m.sha256.substr(0, 12);
  if (!m.kind.empty()) text += " " + m.kind;
  if (!m.precision.empty()) text += " " + m.precision;
  return text;
}

void print_worker(const ext::WorkerInfo& w) {
  std::cout << "  worker " << or_unknown(w.id) << "  state " << or_unknown(w.state)
            << (w.draining ? " (draining)" : "") << "  model " << short_model(w.model)
            << "  in flight " << w.in_flight << "/" << w.capacity << "  rss " << bytes(w.rss_bytes)
            << "  jobs done " << w.jobs_done << "  last heard " << age(w.last_heartbeat_ms)
            << " ago" << (w.keep_warm ? "  keep-warm" : "")
            << (w.failures_in_row > 0 ? "  failures " + std::to_string(w.failures_in_row)
                                      : std::string())
            << "\n";
  if (!w.reason.empty()) std::cout << "    reason: " << w.reason << "\n";
  if (!w.out_of_dispatch.empty())
    std::cout << "    out of dispatch: " << escape_invalid_utf8(w.out_of_dispatch) << "\n";
}

void print_services(const ext::BrokerStatus& s) {
  for (const auto& [name, svc] : s.services) {
    std::cout << "service " << name << ": queued " << svc.queued << ", in flight " << svc.in_flight
              << ", clients waiting " << svc.clients_waiting << ", workers " << svc.workers.size()
              << ", mean service " << number(svc.service_ms) << " ms";
    if (!svc.model.sha256.empty()) std::cout << ", model " << svc.model.sha256;
    std::cout << "\n";
    for (const auto& w : svc.workers) print_worker(w);
  }
}

void print_readable(const std::string& broker, const ext::BrokerStatus& s) {
  std::cout << "broker " << broker << "  up " << age(s.uptime_ms)
            << (s.shutting_down ? "  SHUTTING DOWN" : "") << "\n";
  print_services(s);
  const ext::StatusCounters& c = s.counters;
  std::cout << "jobs: received " << c.received << ", dispatched " << c.dispatched << ", completed "
            << c.completed << ", re-dispatched " << c.redispatched;
  if (!c.errors.empty()) {
    std::cout << ", errors";
    for (const auto& [code, n] : c.errors) std::cout << " " << code << "=" << n;
  }
  std::cout << "\n";
  if (!s.dead_letters.empty())
    std::cout << "dead letters: " << s.dead_letters.size() << " (ecgq dlq)\n";
  const ext::JournalInfo& j = s.journal;
  if (!j.enabled) {
    std::cout << "journal: off (a broker restart loses queued jobs)\n";
  } else {
    std::cout << "journal: " << j.state << ", " << j.path << " (sync " << j.sync << "), "
              << bytes(j.bytes) << " of " << bytes(j.max_bytes) << ", " << j.jobs << " jobs\n";
    if (!j.last_error.empty())
      std::cout << "  last error: " << escape_invalid_utf8(j.last_error) << "\n";
  }
  const ext::CacheInfo& rc = s.result_cache;
  if (!rc.enabled) {
    std::cout << "result cache: off\n";
  } else {
    std::cout << "result cache: " << rc.entries << " entries, " << bytes(rc.bytes) << ", hits "
              << rc.hits << ", misses " << rc.misses << ", hit rate " << percent(rc.hit_rate)
              << "\n";
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
      std::fprintf(stderr,
                   "ecgq: service %s has no worker able to answer (mmi.service 404: none "
                   "registered, or all failed or draining; `ecgq status` shows why)\n",
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
  if (command.json) {
    // Every key the broker sent, known to this build or not.
    auto json = msgpack_json(*body);
    if (!json) {
      std::fprintf(stderr, "ecgq: error: mmi.status reply: %s\n", json.status().message().c_str());
      return kExitFailed;
    }
    std::cout << json->dump(2) << std::endl;
    return kExitOk;
  }
  auto status = ext::decode_status(*body);
  if (!status) {
    std::fprintf(stderr, "ecgq: error: mmi.status reply: %s\n", status.status().message().c_str());
    return kExitFailed;
  }
  print_readable(command.client.broker, *status);
  return kExitOk;
}

}  // namespace ecgq::client
