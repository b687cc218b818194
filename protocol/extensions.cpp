// Long file: the codec of every extension body (READY metadata, heartbeat status, mmi.* bodies)
// over one shared field reader; split it by body when it grows further.
#include "protocol/extensions.hpp"

#include <string_view>

#include "protocol/map_writer.hpp"
#include "protocol/schema_msgpack.hpp"

namespace ecgq::ext {

namespace {

using schema::MapWriter;
using schema::ModelIdentity;

// Reads the string-keyed fields of one decoded map. A present value of the wrong type (or out
// of range) is recorded in `skipped`, naming the field, and leaves the output untouched; nil and
// absent keys read as absent. A key given twice takes its later value, as everywhere in ecgq.
class FieldReader {
 public:
  FieldReader(const msgpack::object& map, std::string prefix, Skipped* skipped)
      : map_(map), prefix_(std::move(prefix)), skipped_(skipped) {}

  // The value of `key` (its last occurrence), or nullptr when absent or nil.
  const msgpack::object* get(std::string_view key) const {
    const msgpack::object* found = nullptr;
    for (uint32_t i = 0; i < map_.via.map.size; ++i) {
      const auto& kv = map_.via.map.ptr[i];
      if (kv.key.type == msgpack::type::STR &&
          std::string_view(kv.key.via.str.ptr, kv.key.via.str.size) == key)
        found = &kv.val;
    }
    return found != nullptr && found->type != msgpack::type::NIL ? found : nullptr;
  }
  // The full name of a field of this map, for errors.
  std::string field(std::string_view key) const { return prefix_ + std::string(key); }
  // Records a skipped field.
  void skip(Status why) const {
    if (skipped_ != nullptr) skipped_->push_back(std::move(why));
  }

  // Reads `key` into `out` when present and of the right type; true when read.
  template <typename T>
  bool read(std::string_view key, T& out) const {
    const msgpack::object* v = get(key);
    if (v == nullptr) return false;
    auto got = typed<T>(*v, field(key));
    if (!got) {
      skip(got.status());
      return false;
    }
    out = std::move(*got);
    return true;
  }
  // As read(), into an optional.
  template <typename T>
  bool read(std::string_view key, std::optional<T>& out) const {
    T value{};
    if (!read(key, value)) return false;
    out = std::move(value);
    return true;
  }
  // Reads an integer that must be >= `min`.
  bool read_at_least(const char* key, int64_t min, std::optional<int64_t>& out) const {
    int64_t n = 0;
    if (!read(key, n)) return false;
    if (n < min) {
      skip(Status(ErrorCode::BadRequest,
                  field(key) + " must be >= " + std::to_string(min) + ", got " + std::to_string(n),
                  field(key)));
      return false;
    }
    out = n;
    return true;
  }

 private:
  template <typename T>
  static Expected<T> typed(const msgpack::object& v, const std::string& field);

  const msgpack::object& map_;
  std::string prefix_;
  Skipped* skipped_;
};

template <>
Expected<int64_t> FieldReader::typed(const msgpack::object& v, const std::string& field) {
  return schema::detail::get_integer(v, field);
}
template <>
Expected<std::string> FieldReader::typed(const msgpack::object& v, const std::string& field) {
  return schema::detail::get_string(v, field);
}
template <>
Expected<bool> FieldReader::typed(const msgpack::object& v, const std::string& field) {
  return schema::detail::get_bool(v, field);
}
template <>
Expected<double> FieldReader::typed(const msgpack::object& v, const std::string& field) {
  return schema::detail::get_number(v, field);
}

// Reads {kind, name, sha256, precision}; fields that are not strings are skipped.
std::optional<ModelIdentity> read_model(const FieldReader& parent, const char* key,
                                        Skipped* skipped) {
  const msgpack::object* v = parent.get(key);
  if (v == nullptr) return std::nullopt;
  if (v->type != msgpack::type::MAP) {
    parent.skip(Status(ErrorCode::BadRequest,
                       parent.field(key) + " must be a map, got " + schema::detail::type_name(*v),
                       parent.field(key)));
    return std::nullopt;
  }
  const FieldReader r(*v, parent.field(key) + ".", skipped);
  ModelIdentity m;
  r.read("kind", m.kind);
  r.read("name", m.name);
  r.read("sha256", m.sha256);
  r.read("precision", m.precision);
  for (auto [name, list] : {std::pair{"outputs", &m.outputs}, std::pair{"labels", &m.labels}}) {
    const msgpack::object* items = r.get(name);
    if (items == nullptr) continue;
    auto strings = schema::detail::get_strings(*items, r.field(name));
    if (strings)
      *list = std::move(*strings);
    else
      r.skip(strings.status());
  }
  return m;
}

// Reads a worker state name; names outside the enum are skipped.
std::optional<WorkerState> read_state(const FieldReader& r, const char* key) {
  std::string name;
  if (!r.read(key, name)) return std::nullopt;
  auto state = parse_worker_state(name);
  if (!state)
    r.skip(Status(ErrorCode::BadRequest,
                  r.field(key) + " \"" + name +
                      "\" is not one of cold, warming, warm, asleep, waking, failed",
                  r.field(key)));
  return state;
}

std::string encode_model(const ModelIdentity& m) {
  MapWriter w;
  w.add("kind", m.kind).add("name", m.name).add("sha256", m.sha256).add("precision", m.precision);
  // Known once the model has loaded; absent before.
  if (!m.outputs.empty()) w.add("outputs", m.outputs);
  if (!m.labels.empty()) w.add("labels", m.labels);
  return w.finish();
}

std::optional<std::string> state_text(const std::optional<WorkerState>& s) {
  if (!s) return std::nullopt;
  return std::string(state_name(*s));
}

}  // namespace

// ------------------------------------------------------------------ READY and HEARTBEAT

std::string encode_ready(const ReadyMetadata& m) {
  MapWriter w;
  w.add("v", schema::kVersion)
      .add_if("capacity", m.capacity)
      .add_if("state", state_text(m.state))
      .add_if("worker_id", m.worker_id);
  if (m.model) w.add_encoded("model", encode_model(*m.model));
  return w.add_if("pid", m.pid).add_if("host", m.host).add_if("reason", m.reason).finish();
}

Expected<ReadyMetadata> decode_ready(const std::string& frame, Skipped* skipped) {
  ASSIGN_OR_RETURN(auto parsed, schema::detail::parse_map(frame));
  const FieldReader r(parsed.get(), "", skipped);
  ReadyMetadata m;
  r.read_at_least("capacity", 1, m.capacity);
  m.state = read_state(r, "state");
  std::string id;
  if (r.read("worker_id", id)) {
    if (id.empty())
      r.skip(Status(ErrorCode::BadRequest, "worker_id must not be empty", "worker_id"));
    else
      m.worker_id = std::move(id);
  }
  m.model = read_model(r, "model", skipped);
  r.read("pid", m.pid);
  r.read("host", m.host);
  r.read("reason", m.reason);
  return m;
}

std::string encode_worker_status(const WorkerStatus& s) {
  MapWriter w;
  w.add_if("state", state_text(s.state))
      .add_if("rss_bytes", s.rss_bytes)
      .add_if("jobs_done", s.jobs_done)
      .add_if("inflight", s.inflight)
      .add_if("capacity", s.capacity);
  if (s.model) w.add_encoded("model", encode_model(*s.model));
  return w.add_if("reason", s.reason).finish();
}

Expected<WorkerStatus> decode_worker_status(const std::string& frame, Skipped* skipped) {
  ASSIGN_OR_RETURN(auto parsed, schema::detail::parse_map(frame));
  const FieldReader r(parsed.get(), "", skipped);
  WorkerStatus s;
  s.state = read_state(r, "state");
  r.read("rss_bytes", s.rss_bytes);
  r.read("jobs_done", s.jobs_done);
  r.read("inflight", s.inflight);
  r.read_at_least("capacity", 1, s.capacity);
  s.model = read_model(r, "model", skipped);
  r.read("reason", s.reason);
  return s;
}

void update_model(ModelIdentity& known, const ModelIdentity& reported) {
  for (auto member : {&ModelIdentity::kind, &ModelIdentity::name, &ModelIdentity::sha256,
                      &ModelIdentity::precision})
    if (!(reported.*member).empty()) known.*member = reported.*member;
  if (!reported.outputs.empty()) known.outputs = reported.outputs;
  if (!reported.labels.empty()) known.labels = reported.labels;
}

std::string encode_broker_heartbeat(const BrokerHeartbeat& h) {
  return MapWriter().add_if("keep_warm", h.keep_warm).finish();
}

Expected<BrokerHeartbeat> decode_broker_heartbeat(const std::string& frame, Skipped* skipped) {
  ASSIGN_OR_RETURN(auto parsed, schema::detail::parse_map(frame));
  BrokerHeartbeat h;
  FieldReader(parsed.get(), "", skipped).read("keep_warm", h.keep_warm);
  return h;
}

// ------------------------------------------------------------------ mmi.cancel

std::string encode_cancel_request(const CancelRequest& request) {
  MapWriter w;
  if (request.all) return w.add("all", true).finish();
  return w.add("ids", request.ids).finish();
}

Expected<CancelRequest> decode_cancel_request(const std::string& body) {
  ASSIGN_OR_RETURN(auto parsed, schema::detail::parse_map(body));
  // Strict: a cancel that silently does less than asked would leave jobs running.
  Skipped problems;
  const FieldReader r(parsed.get(), "", &problems);
  CancelRequest c;
  r.read("all", c.all);
  if (const msgpack::object* ids = r.get("ids")) {
    auto list = schema::detail::get_strings(*ids, "ids");
    if (list)
      c.ids = std::move(*list);
    else
      problems.push_back(list.status());
  }
  if (!problems.empty()) return problems.front();
  if (!c.all && c.ids.empty())
    return Status(ErrorCode::BadRequest, "neither ids nor all: true says what to cancel", "ids");
  return c;
}

std::string encode_cancel_reply(const CancelReply& reply) {
  return MapWriter()
      .add("v", schema::kVersion)
      .add("cancelled", reply.cancelled)
      .add("in_flight", reply.in_flight)
      .add("unknown", reply.unknown)
      .finish();
}

namespace {

// The broker answers an mmi.* request it refuses with an error result instead of the reply:
// that error, when `body` (read by `reader`) is one; ok otherwise.
Status refusal_of(const FieldReader& reader, const std::string& body) {
  if (reader.get("status") == nullptr) return Status::Ok();
  auto result = schema::decode_result(body);
  if (!result) return result.status();
  if (result->error)
    return Status(result->error->code, result->error->message, result->error->field);
  return Status::Ok();
}

}  // namespace

Expected<CancelReply> decode_cancel_reply(const std::string& body) {
  ASSIGN_OR_RETURN(auto parsed, schema::detail::parse_map(body));
  const FieldReader r(parsed.get(), "", nullptr);
  if (Status refused = refusal_of(r, body); !refused.ok()) return refused;
  CancelReply c;
  r.read("cancelled", c.cancelled);
  r.read("in_flight", c.in_flight);
  r.read("unknown", c.unknown);
  return c;
}

// ------------------------------------------------------------------ mmi.job

std::string encode_job_query(const JobQuery& query) {
  MapWriter w;
  w.add("ids", query.ids);
  if (query.watch) w.add("watch", true);
  return w.finish();
}

Expected<JobQuery> decode_job_query(const std::string& body) {
  ASSIGN_OR_RETURN(auto parsed, schema::detail::parse_map(body));
  const FieldReader r(parsed.get(), "", nullptr);
  const msgpack::object* ids = r.get("ids");
  if (ids == nullptr) return Status(ErrorCode::BadRequest, "ids: the job ids to report on", "ids");
  ASSIGN_OR_RETURN(auto list, schema::detail::get_strings(*ids, "ids"));
  if (list.empty() || list.size() > kMaxJobQueryIds)
    return Status(ErrorCode::BadRequest,
                  "ids must hold 1 to " + std::to_string(kMaxJobQueryIds) + " ids, got " +
                      std::to_string(list.size()),
                  "ids");
  JobQuery query{std::move(list), false};
  if (const msgpack::object* watch = r.get("watch")) {
    ASSIGN_OR_RETURN(query.watch, schema::detail::get_bool(*watch, "watch"));
  }
  return query;
}

std::string encode_job_reply(const JobQueryReply& reply) {
  std::vector<std::string> jobs;
  jobs.reserve(reply.jobs.size());
  for (const JobInfo& j : reply.jobs) {
    MapWriter w;
    w.add("id", j.id).add("state", j.state).add("attempts", j.attempts);
    if (j.position >= 0) w.add("position", j.position);
    if (!j.result.empty()) w.add_encoded("result", j.result);
    jobs.push_back(w.finish());
  }
  return MapWriter().add("v", schema::kVersion).add_encoded_array("jobs", jobs).finish();
}

Expected<JobQueryReply> decode_job_reply(const std::string& body) {
  ASSIGN_OR_RETURN(auto parsed, schema::detail::parse_map(body));
  const FieldReader r(parsed.get(), "", nullptr);
  if (Status refused = refusal_of(r, body); !refused.ok()) return refused;
  JobQueryReply reply;
  const msgpack::object* jobs = r.get("jobs");
  if (jobs == nullptr || jobs->type != msgpack::type::ARRAY)
    return Status(ErrorCode::BadResult, "mmi.job reply without a jobs array", "jobs");
  for (uint32_t i = 0; i < jobs->via.array.size; ++i) {
    const msgpack::object& o = jobs->via.array.ptr[i];
    if (o.type != msgpack::type::MAP)
      return Status(ErrorCode::BadResult, "jobs[] entry is not a map", "jobs");
    const FieldReader jr(o, "jobs[].", nullptr);
    JobInfo j;
    jr.read("id", j.id);
    jr.read("state", j.state);
    jr.read("position", j.position);
    jr.read("attempts", j.attempts);
    if (const msgpack::object* res = jr.get("result")) {
      msgpack::sbuffer buf;
      msgpack::pack(buf, *res);
      j.result.assign(buf.data(), buf.size());
    }
    reply.jobs.push_back(std::move(j));
  }
  return reply;
}

// ------------------------------------------------------------------ mmi.status

namespace {

std::string encode_worker_info(const WorkerInfo& w) {
  return MapWriter()
      .add("id", w.id)
      .add("state", w.state)
      .add("reason", w.reason)
      .add("draining", w.draining)
      .add("capacity", w.capacity)
      .add("in_flight", w.in_flight)
      .add("jobs_done", w.jobs_done)
      .add("last_heartbeat_ms", w.last_heartbeat_ms)
      .add("rss_bytes", w.rss_bytes)
      .add("keep_warm", w.keep_warm)
      .add_encoded("model", encode_model(w.model))
      .add("pid", w.pid)
      .add("host", w.host)
      .add("failures_in_row", w.failures_in_row)
      .add("out_of_dispatch", w.out_of_dispatch)
      .finish();
}

std::string encode_service_info(const ServiceInfo& s) {
  std::vector<std::string> workers;
  workers.reserve(s.workers.size());
  for (const auto& w : s.workers) workers.push_back(encode_worker_info(w));
  return MapWriter()
      .add("ecgq", s.ecgq)
      .add("queued", s.queued)
      .add("in_flight", s.in_flight)
      .add("clients_waiting", s.clients_waiting)
      .add("service_ms", s.service_ms)  // packed as msgpack-c packs a double: integral -> int
      .add_encoded("model", encode_model(s.model))
      .add_encoded_array("workers", workers)
      .finish();
}

std::string encode_counters(const StatusCounters& c) {
  return MapWriter()
      .add("received", c.received)
      .add("dispatched", c.dispatched)
      .add("completed", c.completed)
      .add("redispatched", c.redispatched)
      .add("dropped_duplicates", c.dropped_duplicates)
      .add("errors", c.errors)
      .finish();
}

std::string encode_cache_info(const CacheInfo& c) {
  return MapWriter()
      .add("enabled", c.enabled)
      .add("entries", c.entries)
      .add("bytes", c.bytes)
      .add("max_entries", c.max_entries)
      .add("max_bytes", c.max_bytes)
      .add("ttl_ms", c.ttl_ms)
      .add("hits", c.hits)
      .add("misses", c.misses)
      .add_f64("hit_rate", c.hit_rate)
      .add("insertions", c.insertions)
      .add("evictions", c.evictions)
      .add("expirations", c.expirations)
      .finish();
}

// The value of `key` when it is a map, else nullptr (a wrong type is recorded).
const msgpack::object* sub_map(const FieldReader& r, const char* key) {
  const msgpack::object* v = r.get(key);
  if (v == nullptr || v->type == msgpack::type::MAP) return v;
  r.skip(Status(ErrorCode::BadRequest,
                r.field(key) + " must be a map, got " + schema::detail::type_name(*v),
                r.field(key)));
  return nullptr;
}

WorkerInfo decode_worker_info(const msgpack::object& o, const std::string& prefix,
                              Skipped* skipped) {
  WorkerInfo w;
  if (o.type != msgpack::type::MAP) return w;
  const FieldReader r(o, prefix, skipped);
  r.read("id", w.id);
  r.read("state", w.state);
  r.read("reason", w.reason);
  r.read("draining", w.draining);
  r.read("capacity", w.capacity);
  r.read("in_flight", w.in_flight);
  r.read("jobs_done", w.jobs_done);
  r.read("last_heartbeat_ms", w.last_heartbeat_ms);
  r.read("rss_bytes", w.rss_bytes);
  r.read("keep_warm", w.keep_warm);
  if (auto m = read_model(r, "model", skipped)) w.model = *m;
  r.read("pid", w.pid);
  r.read("host", w.host);
  r.read("failures_in_row", w.failures_in_row);
  r.read("out_of_dispatch", w.out_of_dispatch);
  return w;
}

ServiceInfo decode_service_info(const msgpack::object& o, const std::string& prefix,
                                Skipped* skipped) {
  ServiceInfo s;
  const FieldReader r(o, prefix, skipped);
  r.read("ecgq", s.ecgq);
  r.read("queued", s.queued);
  r.read("in_flight", s.in_flight);
  r.read("clients_waiting", s.clients_waiting);
  r.read("service_ms", s.service_ms);
  if (auto m = read_model(r, "model", skipped)) s.model = *m;
  const msgpack::object* workers = r.get("workers");
  if (workers != nullptr && workers->type == msgpack::type::ARRAY) {
    for (uint32_t i = 0; i < workers->via.array.size; ++i)
      s.workers.push_back(decode_worker_info(
          workers->via.array.ptr[i], prefix + "workers[" + std::to_string(i) + "].", skipped));
  }
  return s;
}

StatusCounters decode_counters(const msgpack::object& o, Skipped* skipped) {
  StatusCounters c;
  const FieldReader r(o, "counters.", skipped);
  r.read("received", c.received);
  r.read("dispatched", c.dispatched);
  r.read("completed", c.completed);
  r.read("redispatched", c.redispatched);
  r.read("dropped_duplicates", c.dropped_duplicates);
  if (const msgpack::object* errors = sub_map(r, "errors")) {
    const FieldReader e(*errors, "counters.errors.", skipped);
    for (uint32_t i = 0; i < errors->via.map.size; ++i) {
      const std::string code = schema::detail::key_of(errors->via.map.ptr[i]);
      if (!code.empty()) e.read(code, c.errors[code]);
    }
  }
  return c;
}

CacheInfo decode_cache_info(const msgpack::object& o, Skipped* skipped) {
  CacheInfo c;
  const FieldReader r(o, "result_cache.", skipped);
  r.read("enabled", c.enabled);
  r.read("entries", c.entries);
  r.read("bytes", c.bytes);
  r.read("max_entries", c.max_entries);
  r.read("max_bytes", c.max_bytes);
  r.read("ttl_ms", c.ttl_ms);
  r.read("hits", c.hits);
  r.read("misses", c.misses);
  r.read("hit_rate", c.hit_rate);
  r.read("insertions", c.insertions);
  r.read("evictions", c.evictions);
  r.read("expirations", c.expirations);
  return c;
}

std::string encode_journal_info(const JournalInfo& j) {
  return MapWriter()
      .add("enabled", j.enabled)
      .add("path", j.path)
      .add("sync", j.sync)
      .add("bytes", j.bytes)
      .add("max_bytes", j.max_bytes)
      .add("jobs", j.jobs)
      .add("state", j.state)
      .add("last_error", j.last_error)
      .add("transactions", j.transactions)
      .add("records", j.records)
      .finish();
}

JournalInfo decode_journal_info(const msgpack::object& o, Skipped* skipped) {
  JournalInfo j;
  const FieldReader r(o, "journal.", skipped);
  r.read("enabled", j.enabled);
  r.read("path", j.path);
  r.read("sync", j.sync);
  r.read("bytes", j.bytes);
  r.read("max_bytes", j.max_bytes);
  r.read("jobs", j.jobs);
  r.read("state", j.state);
  r.read("last_error", j.last_error);
  r.read("transactions", j.transactions);
  r.read("records", j.records);
  return j;
}

std::string encode_letter(const DeadLetter& d) {
  std::vector<std::string> attempts;
  for (const auto& a : d.attempts)
    attempts.push_back(
        MapWriter().add("worker", a.worker).add("code", a.code).add("message", a.message).finish());
  return MapWriter()
      .add("id", d.id)
      .add("service", d.service)
      .add("failed_unix_ms", d.failed_unix_ms)
      .add("code", d.code)
      .add_encoded_array("attempts", attempts)
      .finish();
}

DeadLetter decode_dead_letter(const msgpack::object& o, const std::string& prefix,
                              Skipped* skipped) {
  DeadLetter d;
  if (o.type != msgpack::type::MAP) return d;
  const FieldReader r(o, prefix, skipped);
  r.read("id", d.id);
  r.read("service", d.service);
  r.read("failed_unix_ms", d.failed_unix_ms);
  r.read("code", d.code);
  const msgpack::object* attempts = r.get("attempts");
  if (attempts == nullptr || attempts->type != msgpack::type::ARRAY) return d;
  for (uint32_t i = 0; i < attempts->via.array.size; ++i) {
    const msgpack::object& a = attempts->via.array.ptr[i];
    if (a.type != msgpack::type::MAP) continue;
    const FieldReader ar(a, prefix + "attempts[" + std::to_string(i) + "].", skipped);
    DeadAttempt attempt;
    ar.read("worker", attempt.worker);
    ar.read("code", attempt.code);
    ar.read("message", attempt.message);
    d.attempts.push_back(std::move(attempt));
  }
  return d;
}

}  // namespace

std::string encode_dead_letter(const DeadLetter& letter) {
  return encode_letter(letter);
}

Expected<DeadLetter> decode_dead_letter(const std::string& body) {
  ASSIGN_OR_RETURN(auto parsed, schema::detail::parse_map(body));
  return decode_dead_letter(parsed.get(), "", nullptr);
}

std::string encode_status(const BrokerStatus& s) {
  MapWriter services;
  for (const auto& [name, svc] : s.services) services.add_encoded(name, encode_service_info(svc));
  std::vector<std::string> dead_letters;
  for (const auto& d : s.dead_letters) dead_letters.push_back(encode_letter(d));
  return MapWriter()
      .add("v", schema::kVersion)
      .add("uptime_ms", s.uptime_ms)
      .add("shutting_down", s.shutting_down)
      .add_encoded("services", services.finish())
      .add_encoded("counters", encode_counters(s.counters))
      .add_encoded("result_cache", encode_cache_info(s.result_cache))
      .add_encoded("journal", encode_journal_info(s.journal))
      .add_encoded_array("dead_letters", dead_letters)
      .finish();
}

Expected<BrokerStatus> decode_status(const std::string& body, Skipped* skipped) {
  ASSIGN_OR_RETURN(auto parsed, schema::detail::parse_map(body));
  const FieldReader r(parsed.get(), "", skipped);
  BrokerStatus s;
  r.read("uptime_ms", s.uptime_ms);
  r.read("shutting_down", s.shutting_down);
  if (const msgpack::object* services = sub_map(r, "services")) {
    for (uint32_t i = 0; i < services->via.map.size; ++i) {
      const auto& kv = services->via.map.ptr[i];
      const std::string name = schema::detail::key_of(kv);
      if (name.empty() || kv.val.type != msgpack::type::MAP) continue;
      s.services[name] = decode_service_info(kv.val, "services." + name + ".", skipped);
    }
  }
  if (const msgpack::object* counters = sub_map(r, "counters"))
    s.counters = decode_counters(*counters, skipped);
  if (const msgpack::object* cache = sub_map(r, "result_cache"))
    s.result_cache = decode_cache_info(*cache, skipped);
  if (const msgpack::object* journal = sub_map(r, "journal"))
    s.journal = decode_journal_info(*journal, skipped);
  const msgpack::object* dead = r.get("dead_letters");
  if (dead != nullptr && dead->type == msgpack::type::ARRAY)
    for (uint32_t i = 0; i < dead->via.array.size; ++i)
      s.dead_letters.push_back(decode_dead_letter(
          dead->via.array.ptr[i], "dead_letters[" + std::to_string(i) + "].", skipped));
  return s;
}

}  // namespace ecgq::ext
