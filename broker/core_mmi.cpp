// Majordomo Management Interface (RFC 8) plus the ecgq extensions mmi.status and mmi.cancel.
// The bodies are protocol/extensions.hpp's; this file only fills them in.
#include <spdlog/spdlog.h>

#include <set>

#include "broker/core.hpp"
#include "common/text.hpp"
#include "protocol/schema.hpp"

namespace ecgq::broker {

void BrokerCore::on_mmi(const std::string& peer, const mdp::ClientMessage& msg) {
  std::string answer;
  if (msg.service == "mmi.service") {
    const std::string name = msg.body.empty() ? std::string() : msg.body[0];
    const Service* svc = find_service(name);
    answer = svc != nullptr && !svc->workers.empty() ? ext::kServiceFound : ext::kServiceNotFound;
  } else if (msg.service == "mmi.status") {
    answer = status_body();
  } else if (msg.service == "mmi.cancel") {
    answer = cancel(peer, msg.body.empty() ? std::string() : msg.body[0]);
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
    for (const auto& key : svc.workers) {
      const Worker& w = workers_.at(key);
      ext::WorkerInfo wi;
      wi.id = w.worker_id;
      wi.state = w.shown_state();
      wi.capacity = w.capacity;
      wi.in_flight = static_cast<int64_t>(w.in_flight.size());
      wi.jobs_done = static_cast<int64_t>(w.jobs_done);
      wi.last_heartbeat_ms = static_cast<int64_t>(ms_since(w.last_seen, now_));
      wi.rss_bytes = w.rss_bytes;
      wi.keep_warm = w.keep_warm;
      wi.model = w.model;
      wi.pid = w.pid;
      wi.host = w.host;
      info.workers.push_back(std::move(wi));
    }
  }
  s.counters = counters_;
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
        [&](const JobRecord& j) { return j.client == peer && (all || wanted.count(j.id) > 0); });
    for (auto& job : gone) {
      wanted.erase(job->id);
      finish_with_error(*job, "cancelled", "cancelled by the client (mmi.cancel)");
      ++reply.cancelled;
    }
  }
  // Requested ids that are running now cannot be recalled; report them apart from unknown ones.
  for (const auto& [k, w] : workers_)
    for (const auto& [token, job] : w.in_flight)
      if (job->client == peer && (all || wanted.count(job->id))) {
        ++reply.in_flight;
        wanted.erase(job->id);
      }
  reply.unknown = static_cast<int64_t>(wanted.size());
  spdlog::info("event=cancel client={} cancelled={} in_flight={} unknown={}", peer_name(peer),
               reply.cancelled, reply.in_flight, reply.unknown);
  return ext::encode_cancel_reply(reply);
}

}  // namespace ecgq::broker
