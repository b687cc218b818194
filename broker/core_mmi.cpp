// Majordomo Management Interface (RFC 8) plus the ecgq extensions mmi.status, mmi.cancel,
// mmi.job and mmi.rollout (core_admission.cpp).
// The bodies are protocol/extensions.hpp's; this file only fills them in.
#include <spdlog/spdlog.h>

#include <algorithm>
#include <set>

#include "broker/core.hpp"
#include "broker/key_role.hpp"
#include "common/text.hpp"
#include "protocol/schema.hpp"

namespace ecgq::broker {

void BrokerCore::on_mmi(const std::string& peer, const mdp::ClientMessage& msg) {
  std::string answer;
  if (msg.service == "mmi.service") {
    const std::string name = msg.body.empty() ? std::string() : msg.body[0];
    const Service* svc = find_service(name);
    // Found only when a worker can answer: failed and draining workers do not count.
    const bool up = svc != nullptr && std::any_of(svc->workers.begin(), svc->workers.end(),
                                                  [&](const std::string& key) {
                                                    return takes_jobs(workers_.at(key), "");
                                                  });
    answer = up ? ext::kServiceFound : ext::kServiceNotFound;
  } else if (msg.service == "mmi.status") {
    answer = status_body();
  } else if (msg.service == "mmi.cancel") {
    answer = cancel(peer, msg.body.empty() ? std::string() : msg.body[0]);
  } else if (msg.service == "mmi.rollout") {
    answer = rollout(peer, msg.body.empty() ? std::string() : msg.body[0]);
  } else if (msg.service == "mmi.job") {
    answer = job_reply(peer, msg.body.empty() ? std::string() : msg.body[0]);
  } else {
    answer = ext::kServiceNotImplemented;
  }
  spdlog::debug("event=mmi peer={} service={} bytes={}", peer_name(peer), msg.service,
                answer.size());
  mdp::Frames body;
  body.push_back(std::move(answer));
  send(peer, mdp::client_frames(mdp::ClientCommand::Final, msg.service, std::move(body)));
}

std::string BrokerCore::status_body() const {
  ext::BrokerStatus s;
  s.uptime_ms = static_cast<int64_t>(ms_since(started_, now_));
  s.shutting_down = shutting_down_;
  for (const auto& [name, svc] : services_) {
    ext::ServiceInfo& info = s.services[name];
    info.ecgq = svc.ecgq_jobs;
    info.queued = static_cast<int64_t>(svc.queue.size());
    info.in_flight = svc.in_flight;
    info.clients_waiting = static_cast<int64_t>(svc.queue.clients());
    info.service_ms = svc.service_ms;
    info.model = svc.model;
    for (const auto& key : svc.workers) {
      const Worker& w = workers_.at(key);
      ext::WorkerInfo wi;
      wi.id = w.worker_id;
      wi.state = w.shown_state();
      wi.reason = w.reason;
      wi.draining = w.draining;
      wi.capacity = w.capacity;
      wi.in_flight = static_cast<int64_t>(w.in_flight.size());
      wi.jobs_done = static_cast<int64_t>(w.jobs_done);
      wi.last_heartbeat_ms = static_cast<int64_t>(ms_since(w.last_seen, now_));
      wi.rss_bytes = w.rss_bytes;
      wi.keep_warm = w.keep_warm;
      wi.model = w.model;
      wi.pid = w.pid;
      wi.host = w.host;
      wi.failures_in_row = w.failures_in_row;
      wi.out_of_dispatch = w.out_of_dispatch;
      if (wi.out_of_dispatch.empty() && w.held_back)
        wi.out_of_dispatch =
            "held back: a job ran past max_job_time (no jobs until a FINAL or READY)";
      info.workers.push_back(std::move(wi));
    }
  }
  // The services the broker serves are known even before a worker of theirs registers.
  for (const auto& name : config_.ecgq_services) s.services[name].ecgq = true;
  s.counters = counters_;
  s.dead_letters.assign(dead_letters_.begin(), dead_letters_.end());
  s.journal = journal_info();
  const ResultCacheStats& c = cache_.stats();
  s.result_cache = ext::CacheInfo{cache_.enabled(),
                                  static_cast<int64_t>(c.entries),
                                  static_cast<int64_t>(c.bytes),
                                  cache_.limits().max_entries,
                                  cache_.limits().max_bytes,
                                  static_cast<int64_t>(cache_.limits().ttl.count()),
                                  static_cast<int64_t>(c.hits),
                                  static_cast<int64_t>(c.misses),
                                  c.hit_rate(),
                                  static_cast<int64_t>(c.insertions),
                                  static_cast<int64_t>(c.evictions),
                                  static_cast<int64_t>(c.expirations)};
  return ext::encode_status(s);
}

std::string BrokerCore::cancel(const std::string& peer, const std::string& body) {
  auto request = ext::decode_cancel_request(body);
  if (!request) {
    ++counters_.errors["bad_request"];
    spdlog::info("event=bad_cancel client={} field={} reason=\"{}\"", peer_name(peer),
                 loggable(request.status().field()), loggable(request.status().message(), 256));
    return schema::error_result("", "bad_request",
                                "mmi.cancel body must be a msgpack map {ids: [str, ...]} or "
                                "{all: true}: " +
                                    request.status().message(),
                                "ids");
  }
  std::set<std::string> wanted(request->ids.begin(), request->ids.end());
  const bool all = request->all;
  ext::CancelReply reply;
  for (auto& [name, svc] : services_) {
    auto gone = svc.queue.remove_if(
        [&](const JobRecord& j) { return may_cancel(j, all) && (all || wanted.count(j.id) > 0); });
    for (auto& job : gone) {
      wanted.erase(job->id);
      finish_with_error(*job, "cancelled", "cancelled by the client (mmi.cancel)");
      ++reply.cancelled;
    }
  }
  // Requested ids that are running now cannot be recalled; report them apart from unknown ones.
  for (const auto& [k, w] : workers_)
    for (const auto& [token, job] : w.in_flight)
      if (may_cancel(*job, all) && (all || wanted.count(job->id))) {
        ++reply.in_flight;
        wanted.erase(job->id);
      }
  reply.unknown = static_cast<int64_t>(wanted.size());
  spdlog::info("event=cancel client={} cancelled={} in_flight={} unknown={}", peer_name(peer),
               reply.cancelled, reply.in_flight, reply.unknown);
  return ext::encode_cancel_reply(reply);
}

bool BrokerCore::may_cancel(const JobRecord& job, bool all) const {
  // {all: true} cancels this connection's jobs only (another producer may share its key).
  if (all || !curve_) return job.client == sender_.peer;
  // By id: the key that submitted it, from any connection, or an admin key.
  return job.submitter == sender_.key || (sender_.roles & kRoleAdmin) != 0;
}

}  // namespace ecgq::broker
