// The typed codec of the extension bodies (READY metadata, heartbeat frames, mmi.*): what goes
// on the wire, what comes back, and the field named when a value is unusable.
#include <gtest/gtest.h>

#include <msgpack.hpp>

#include "protocol/extensions.hpp"
#include "protocol/map_writer.hpp"

namespace ecgq::ext {
namespace {

// Keys of a msgpack map body, in wire order.
std::vector<std::string> keys_of(const std::string& body) {
  auto oh = msgpack::unpack(body.data(), body.size());
  std::vector<std::string> keys;
  for (uint32_t i = 0; i < oh.get().via.map.size; ++i)
    keys.push_back(oh.get().via.map.ptr[i].key.as<std::string>());
  return keys;
}

// A msgpack map from string keys to already-encoded values.
std::string map_of(const std::vector<std::pair<std::string, std::string>>& entries) {
  schema::MapWriter w;
  for (const auto& [k, v] : entries) w.add_encoded(k, v);
  return w.finish();
}

template <typename T>
std::string mp(const T& v) {
  msgpack::sbuffer b;
  msgpack::pack(b, v);
  return std::string(b.data(), b.size());
}

TEST(MapWriter, TheHeaderCountsTheFieldsWritten) {
  schema::MapWriter w;
  std::optional<int64_t> absent;
  w.add("a", 1).add_if("b", absent).add_if("c", std::optional<std::string>("x")).add_f64("d", 2);
  EXPECT_EQ(w.size(), 3u);
  auto oh = msgpack::unpack(w.finish().data(), w.finish().size());
  const auto m = oh.get().as<std::map<std::string, msgpack::object>>();
  EXPECT_EQ(m.size(), 3u);
  EXPECT_EQ(m.at("d").type, msgpack::type::FLOAT64) << "add_f64 keeps integral floats floats";
  EXPECT_EQ(schema::MapWriter().finish(), std::string(1, '\x80'));
  // Keys are binary-safe (service names may hold any byte).
  EXPECT_EQ(keys_of(schema::MapWriter().add(std::string("a\0b", 3), 1).finish()),
            (std::vector<std::string>{std::string("a\0b", 3)}));
}

TEST(ReadyMetadata, RoundTripsInTheDocumentedKeyOrder) {
  ReadyMetadata m;
  m.capacity = 2;
  m.state = WorkerState::Cold;
  m.worker_id = "w1";
  m.model = schema::ModelIdentity{"ecgfm", "m.pt", "", "fp32"};
  m.pid = 42;
  m.host = "h";
  const std::string body = encode_ready(m);
  EXPECT_EQ(keys_of(body), (std::vector<std::string>{"v", "capacity", "state", "worker_id", "model",
                                                     "pid", "host"}));
  Skipped skipped;
  auto back = decode_ready(body, &skipped);
  ASSERT_TRUE(back.ok()) << back.status().to_string();
  EXPECT_TRUE(skipped.empty());
  EXPECT_EQ(back->capacity, 2);
  EXPECT_EQ(back->state, WorkerState::Cold);
  EXPECT_EQ(back->worker_id, "w1");
  EXPECT_EQ(back->model->name, "m.pt");
  EXPECT_EQ(back->pid, 42);
  EXPECT_EQ(back->host, "h");
  EXPECT_EQ(keys_of(encode_ready({})), (std::vector<std::string>{"v"}));
}

TEST(ReadyMetadata, UnusableFieldsAreSkippedAndNamedTheRestIsKept) {
  const std::string body =
      map_of({{"v", mp(1)},
              {"capacity", mp(0)},
              {"state", mp(std::string("dozing"))},
              {"worker_id", mp(std::string(""))},
              {"pid", mp(std::string("12"))},
              {"host", mp(std::string("h2"))},
              {"model", map_of({{"sha256", mp(7)}, {"name", mp(std::string("n"))}})}});
  Skipped skipped;
  auto m = decode_ready(body, &skipped);
  ASSERT_TRUE(m.ok());
  EXPECT_FALSE(m->capacity);
  EXPECT_FALSE(m->state);
  EXPECT_FALSE(m->worker_id);
  EXPECT_FALSE(m->pid);
  EXPECT_EQ(m->host, "h2");
  EXPECT_EQ(m->model->name, "n");
  std::vector<std::string> fields;
  for (const auto& s : skipped) fields.push_back(s.field());
  EXPECT_EQ(fields,
            (std::vector<std::string>{"capacity", "state", "worker_id", "model.sha256", "pid"}));
  EXPECT_NE(skipped[0].message().find(">= 1"), std::string::npos) << skipped[0].message();
}

TEST(ReadyMetadata, ABodyThatIsNotOneMapFails) {
  EXPECT_FALSE(decode_ready("junk").ok());
  EXPECT_FALSE(decode_ready(mp(std::vector<int>{1, 2})).ok());
  EXPECT_FALSE(decode_ready(encode_ready({}) + "x").ok());  // trailing bytes
}

TEST(WorkerStatus, RoundTripsAndTheModelMergesOnlyWhatIsKnown) {
  WorkerStatus s{WorkerState::Warm, 4096, 3, 1, 2, schema::ModelIdentity{"", "", "abc", "bf16"}};
  const std::string body = encode_worker_status(s);
  EXPECT_EQ(keys_of(body), (std::vector<std::string>{"state", "rss_bytes", "jobs_done", "inflight",
                                                     "capacity", "model"}));
  auto back = decode_worker_status(body);
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->state, WorkerState::Warm);
  EXPECT_EQ(back->rss_bytes, 4096);
  EXPECT_EQ(back->capacity, 2);
  schema::ModelIdentity known{"ecgfm", "m.pt", "", "fp32"};
  update_model(known, *back->model);
  EXPECT_EQ(known.kind, "ecgfm");
  EXPECT_EQ(known.name, "m.pt");
  EXPECT_EQ(known.sha256, "abc");
  EXPECT_EQ(known.precision, "bf16");
}

TEST(BrokerHeartbeat, CarriesKeepWarm) {
  EXPECT_EQ(encode_broker_heartbeat({true}), map_of({{"keep_warm", mp(true)}}));
  EXPECT_EQ(decode_broker_heartbeat(encode_broker_heartbeat({false}))->keep_warm, false);
  Skipped skipped;
  EXPECT_FALSE(decode_broker_heartbeat(map_of({{"keep_warm", mp(1)}}), &skipped)->keep_warm);
  ASSERT_EQ(skipped.size(), 1u);
  EXPECT_EQ(skipped[0].field(), "keep_warm");
}

TEST(Cancel, RequestsAreStrictAndNameTheField) {
  EXPECT_EQ(encode_cancel_request({true, {"ignored"}}), map_of({{"all", mp(true)}}));
  auto ids = decode_cancel_request(encode_cancel_request({false, {"a", "b"}}));
  ASSERT_TRUE(ids.ok());
  EXPECT_EQ(ids->ids, (std::vector<std::string>{"a", "b"}));
  EXPECT_FALSE(ids->all);
  EXPECT_TRUE(decode_cancel_request(encode_cancel_request({true, {}}))->all);
  auto wrong_all = decode_cancel_request(map_of({{"all", mp(1)}}));
  EXPECT_EQ(wrong_all.status().field(), "all");
  auto wrong_ids = decode_cancel_request(map_of({{"ids", mp(std::vector<int>{1})}}));
  EXPECT_EQ(wrong_ids.status().field(), "ids");
  EXPECT_EQ(decode_cancel_request(map_of({})).status().field(), "ids");
  EXPECT_EQ(decode_cancel_request("junk").status().code(), "bad_request");
}

TEST(Cancel, RepliesRoundTripAndAnErrorResultIsAnError) {
  const std::string body = encode_cancel_reply({1, 2, 3});
  EXPECT_EQ(keys_of(body), (std::vector<std::string>{"v", "cancelled", "in_flight", "unknown"}));
  auto r = decode_cancel_reply(body);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->cancelled, 1);
  EXPECT_EQ(r->in_flight, 2);
  EXPECT_EQ(r->unknown, 3);
  auto refused = decode_cancel_reply(schema::error_result("", "bad_request", "no", "ids"));
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), "bad_request");
  EXPECT_EQ(refused.status().field(), "ids");
}

TEST(Status, RoundTripsInTheDocumentedShape) {
  BrokerStatus s;
  s.uptime_ms = 1234;
  ServiceInfo& svc = s.services["ecg-fm"];
  svc.ecgq = true;
  svc.queued = 2;
  svc.service_ms = 12.5;
  WorkerInfo w;
  w.id = "w1";
  w.state = "busy";
  w.capacity = 2;
  w.model.sha256 = "abc";
  svc.workers.push_back(w);
  s.counters.received = 5;
  s.counters.errors["queue_full"] = 1;
  s.result_cache.enabled = true;
  s.result_cache.hit_rate = 0.5;
  s.journal = {true, "/var/lib/ecgq/journal.db", "full", 4096, 1 << 30, 3, "full", "why", 7, 9};
  s.dead_letters.push_back({"j1",
                            "ecg-fm",
                            1700000000000,
                            "model_error",
                            {{"w1", "model_error", "boom"}, {"w2", "model_error", "bang"}}});
  const std::string body = encode_status(s);
  EXPECT_EQ(keys_of(body),
            (std::vector<std::string>{"v", "uptime_ms", "shutting_down", "services", "counters",
                                      "result_cache", "journal", "dead_letters"}));
  Skipped skipped;
  auto back = decode_status(body, &skipped);
  ASSERT_TRUE(back.ok()) << back.status().to_string();
  EXPECT_TRUE(skipped.empty());
  EXPECT_EQ(back->uptime_ms, 1234);
  const auto& b = back->services.at("ecg-fm");
  EXPECT_TRUE(b.ecgq);
  EXPECT_EQ(b.queued, 2);
  EXPECT_DOUBLE_EQ(b.service_ms, 12.5);
  EXPECT_EQ(back->journal.path, "/var/lib/ecgq/journal.db");
  EXPECT_EQ(back->journal.jobs, 3);
  EXPECT_EQ(back->journal.state, "full");
  EXPECT_EQ(back->journal.last_error, "why");
  EXPECT_EQ(back->journal.records, 9);
  ASSERT_EQ(b.workers.size(), 1u);
  EXPECT_EQ(b.workers[0].id, "w1");
  EXPECT_EQ(b.workers[0].state, "busy");
  EXPECT_EQ(b.workers[0].model.sha256, "abc");
  EXPECT_EQ(b.workers[0].rss_bytes, -1);
  EXPECT_EQ(back->counters.received, 5);
  EXPECT_EQ(back->counters.errors.at("queue_full"), 1);
  EXPECT_TRUE(back->result_cache.enabled);
  EXPECT_DOUBLE_EQ(back->result_cache.hit_rate, 0.5);
}

TEST(Status, ALaterOrEarlierBrokersBodyStillDecodes) {
  // Unknown keys ignored, missing keys default, a wrong type skipped and named.
  const std::string body = map_of({{"v", mp(1)},
                                   {"uptime_ms", mp(std::string("long"))},
                                   {"new_section", mp(std::vector<int>{1})},
                                   {"services", map_of({{"x", map_of({{"queued", mp(3)}})}})}});
  Skipped skipped;
  auto s = decode_status(body, &skipped);
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->services.at("x").queued, 3);
  EXPECT_FALSE(s->result_cache.enabled);
  ASSERT_EQ(skipped.size(), 1u);
  EXPECT_EQ(skipped[0].field(), "uptime_ms");
}

}  // namespace
}  // namespace ecgq::ext
