#include "gateway/service_view.hpp"

namespace ecgq::gateway {

namespace {

// Every state a worker can report (protocol/worker_state.hpp, plus busy and the failed state
// admission will add), so that /health always lists the same keys.
const char* const kStates[] = {"warm", "busy", "asleep", "waking", "warming", "cold", "failed"};

int64_t number(const client::Json& j, const char* key) {
  return j.contains(key) && j.at(key).is_number() ? j.at(key).get<int64_t>() : 0;
}

}  // namespace

ServiceView service_view(const StatusSnapshot& snapshot, const std::string& service,
                         Millis stale_after) {
  ServiceView v;
  v.workers = client::Json::object();
  for (const char* s : kStates) v.workers[s] = 0;
  v.model = nullptr;
  if (!snapshot.valid) {
    v.reason = "the broker has not answered mmi.status yet" +
               (snapshot.error.empty() ? std::string() : ": " + snapshot.error);
    return v;
  }
  v.status_age_ms = ms_since(snapshot.at);
  const client::Json& s = snapshot.status;
  const client::Json* svc = nullptr;
  if (s.contains("services") && s.at("services").is_object() && s.at("services").contains(service))
    svc = &s.at("services").at(service);
  int64_t usable = 0;
  if (svc != nullptr) {
    v.queued = number(*svc, "queued");
    v.in_flight = number(*svc, "in_flight");
    if (svc->contains("workers") && svc->at("workers").is_array()) {
      for (const auto& w : svc->at("workers")) {
        const std::string state = w.value("state", "");
        if (state.empty()) continue;
        v.workers[state] = v.workers.value(state, 0) + 1;
        if (state == "warm" || state == "busy") v.model_loaded = true;
        if (state != "failed" && state != "unavailable") ++usable;
        if (v.model.is_null() && w.contains("model") && w.at("model").is_object() &&
            !w.at("model").value("sha256", "").empty())
          v.model = w.at("model");
        if (v.labels.empty() && w.contains("model") && w.at("model").is_object() &&
            w.at("model").contains("labels") && w.at("model").at("labels").is_array()) {
          for (const auto& l : w.at("model").at("labels"))
            if (l.is_string()) v.labels.push_back(l.get<std::string>());
        }
      }
    }
  }
  if (v.status_age_ms > static_cast<double>(stale_after.count())) {
    v.reason = "the broker has not answered mmi.status for " +
               std::to_string(static_cast<int64_t>(v.status_age_ms / 1000)) + " s" +
               (snapshot.error.empty() ? std::string() : ": " + snapshot.error);
  } else if (s.value("shutting_down", false)) {
    v.reason = "the broker is shutting down";
  } else if (usable == 0) {
    v.reason = "no worker of service " + service + " is registered with the broker";
  } else {
    v.ready = true;
  }
  return v;
}

}  // namespace ecgq::gateway
