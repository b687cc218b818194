// Majordomo Management Interface (RFC 8) plus the ecgq extensions mmi.status and mmi.cancel.
#include <spdlog/spdlog.h>

#include <msgpack.hpp>
#include <set>

#include "broker/broker.hpp"
#include "protocol/schema.hpp"
#include "protocol/schema_msgpack.hpp"

namespace ecgq::broker {

namespace {

using schema::detail::pack_key;
using schema::detail::Packer;

int64_t ms_since(TimePoint t, TimePoint now) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(now - t).count();
}

}  // namespace

void Broker::handle_mmi(const std::string& peer, const mdp::ClientMessage& msg) {
  std::string answer;
  if (msg.service == "mmi.service") {
    const std::string name = msg.body.empty() ? std::string() : msg.body[0];
    auto it = services_.find(name);
    answer = it != services_.end() && !it->second.workers.empty() ? "200" : "404";
  } else if (msg.service == "mmi.status") {
    answer = status_body();
  } else if (msg.service == "mmi.cancel") {
    answer = cancel(peer, msg.body.empty() ? std::string() : msg.body[0]);
  } else {
    answer = "501";
  }
  spdlog::debug("event=mmi peer={} service={} bytes={}", peer_name(peer), msg.service,
                answer.size());
  mdp::Frames body;
  body.push_back(std::move(answer));
  send(peer, mdp::client_frames(mdp::ClientCommand::Final, msg.service, std::move(body)),
       msg.service);
}

std::string Broker::status_body() const {
  const TimePoint now = Clock::now();
  msgpack::sbuffer buf;
  Packer pk(buf);
  pk.pack_map(6);
  pack_key(pk, "v");
  pk.pack(schema::kVersion);
  pack_key(pk, "uptime_ms");
  pk.pack(ms_since(started_, now));
  pack_key(pk, "shutting_down");
  pk.pack(shutting_down_);

  pack_key(pk, "services");
  pk.pack_map(static_cast<uint32_t>(services_.size()));
  for (const auto& [name, svc] : services_) {
    pk.pack(name);
    pk.pack_map(6);
    pack_key(pk, "ecgq");
    pk.pack(svc.ecgq);
    pack_key(pk, "queued");
    pk.pack(static_cast<uint64_t>(svc.queue.size()));
    pack_key(pk, "in_flight");
    pk.pack(svc.in_flight);
    pack_key(pk, "clients_waiting");
    pk.pack(static_cast<uint64_t>(svc.queue.clients()));
    pack_key(pk, "service_ms");
    pk.pack(svc.service_ms);
    pack_key(pk, "workers");
    pk.pack_array(static_cast<uint32_t>(svc.workers.size()));
    for (const auto& k : svc.workers) {
      const Worker& w = workers_.at(k);
      pk.pack_map(11);
      pack_key(pk, "id");
      pk.pack(w.worker_id);
      pack_key(pk, "state");
      pk.pack(w.shown_state());
      pack_key(pk, "capacity");
      pk.pack(w.capacity);
      pack_key(pk, "in_flight");
      pk.pack(static_cast<uint64_t>(w.in_flight.size()));
      pack_key(pk, "jobs_done");
      pk.pack(w.jobs_done);
      pack_key(pk, "last_heartbeat_ms");
      pk.pack(ms_since(w.last_seen, now));
      pack_key(pk, "rss_bytes");
      pk.pack(w.rss_bytes);
      pack_key(pk, "keep_warm");
      pk.pack(w.keep_warm);
      pack_key(pk, "model");
      schema::detail::pack_model(pk, w.model);
      pack_key(pk, "pid");
      pk.pack(w.pid);
      pack_key(pk, "host");
      pk.pack(w.host);
    }
  }

  pack_key(pk, "counters");
  pk.pack_map(6);
  pack_key(pk, "received");
  pk.pack(counters_.received);
  pack_key(pk, "dispatched");
  pk.pack(counters_.dispatched);
  pack_key(pk, "completed");
  pk.pack(counters_.completed);
  pack_key(pk, "redispatched");
  pk.pack(counters_.redispatched);
  pack_key(pk, "dropped_duplicates");
  pk.pack(counters_.dropped_duplicates);
  pack_key(pk, "errors");
  pk.pack(counters_.errors);

  const ResultCacheStats& c = cache_.stats();
  pack_key(pk, "result_cache");
  pk.pack_map(12);
  pack_key(pk, "enabled");
  pk.pack(cache_.enabled());
  pack_key(pk, "entries");
  pk.pack(c.entries);
  pack_key(pk, "bytes");
  pk.pack(c.bytes);
  pack_key(pk, "max_entries");
  pk.pack(cache_.limits().max_entries);
  pack_key(pk, "max_bytes");
  pk.pack(cache_.limits().max_bytes);
  pack_key(pk, "ttl_ms");
  pk.pack(static_cast<int64_t>(cache_.limits().ttl.count()));
  pack_key(pk, "hits");
  pk.pack(c.hits);
  pack_key(pk, "misses");
  pk.pack(c.misses);
  pack_key(pk, "hit_rate");
  schema::detail::pack_f64(pk, c.hit_rate());
  pack_key(pk, "insertions");
  pk.pack(c.insertions);
  pack_key(pk, "evictions");
  pk.pack(c.evictions);
  pack_key(pk, "expirations");
  pk.pack(c.expirations);
  return std::string(buf.data(), buf.size());
}

std::string Broker::cancel(const std::string& peer, const std::string& body) {
  bool all = false;
  std::vector<std::string> ids;
  bool valid = false;
  try {
    size_t off = 0;
    auto oh = msgpack::unpack(body.data(), body.size(), off);
    const msgpack::object& o = oh.get();
    if (off == body.size() && o.type == msgpack::type::MAP) {
      valid = true;
      for (uint32_t i = 0; i < o.via.map.size; ++i) {
        const auto& kv = o.via.map.ptr[i];
        if (kv.key.type != msgpack::type::STR) continue;
        const std::string k(kv.key.via.str.ptr, kv.key.via.str.size);
        if (k == "all" && kv.val.type == msgpack::type::BOOLEAN) {
          all = kv.val.via.boolean;
        } else if (k == "ids" && kv.val.type == msgpack::type::ARRAY) {
          for (uint32_t j = 0; j < kv.val.via.array.size; ++j) {
            const auto& e = kv.val.via.array.ptr[j];
            if (e.type != msgpack::type::STR)
              valid = false;
            else
              ids.emplace_back(e.via.str.ptr, e.via.str.size);
          }
        } else if (k == "all" || k == "ids") {
          valid = false;
        }
      }
    }
  } catch (const std::exception&) {
    valid = false;
  }
  if (!valid || (!all && ids.empty())) {
    ++counters_.errors["bad_request"];
    return schema::error_result("", "bad_request",
                                "mmi.cancel body must be a msgpack map {ids: [str, ...]} or "
                                "{all: true}",
                                "ids");
  }
  std::set<std::string> wanted(ids.begin(), ids.end());
  uint64_t cancelled = 0;
  for (auto& [name, svc] : services_) {
    auto gone = svc.queue.remove_if(
        [&](const Job& j) { return j.client == peer && (all || wanted.count(j.id) > 0); });
    for (auto& job : gone) {
      wanted.erase(job->id);
      finish_with_error(*job, "cancelled", "cancelled by the client (mmi.cancel)");
      ++cancelled;
    }
  }
  // Requested ids that are running now cannot be recalled; report them apart from unknown ones.
  uint64_t running = 0;
  for (const auto& [k, w] : workers_)
    for (const auto& [token, job] : w.in_flight)
      if (job->client == peer && (all || wanted.count(job->id))) {
        ++running;
        wanted.erase(job->id);
      }
  spdlog::info("event=cancel client={} cancelled={} in_flight={} unknown={}", peer_name(peer),
               cancelled, running, wanted.size());
  msgpack::sbuffer buf;
  Packer pk(buf);
  pk.pack_map(4);
  pack_key(pk, "v");
  pk.pack(schema::kVersion);
  pack_key(pk, "cancelled");
  pk.pack(cancelled);
  pack_key(pk, "in_flight");
  pk.pack(running);
  pack_key(pk, "unknown");
  pk.pack(static_cast<uint64_t>(wanted.size()));
  return std::string(buf.data(), buf.size());
}

}  // namespace ecgq::broker
