// The broker's result cache end to end: a real ecgq-broker and a real ecgq-worker (tiny
// checkpoint), a real record submitted twice, changed, broken, and a broker without the cache.
#include <msgpack.hpp>

#include "records/ecg_record.hpp"
#include "tests/test_e2e_cluster.hpp"

namespace ecgq::test {
namespace {

// A real 10 s 12-lead record (PhysioNet Challenge, 500 Hz, int16 with gains).
schema::Job real_record() {
  auto rec = read_record(data_path("ecg/E07500.hea"));
  EXPECT_TRUE(rec.ok()) << rec.status().to_string();
  if (!rec) return {};
  auto job = job_from_record(*rec);
  EXPECT_TRUE(job.ok()) << job.status().to_string();
  return job ? *job : schema::Job{};
}

std::string meta_of(const std::string& text) {
  msgpack::sbuffer b;
  msgpack::packer<msgpack::sbuffer> pk(b);
  pk.pack_map(1);
  pk.pack(std::string("note"));
  pk.pack(text);
  return std::string(b.data(), b.size());
}

// jobs_done of worker `id` in mmi.status, -1 when it is not listed.
int64_t jobs_done(client::Client& c, const std::string& id) {
  const client::Json s = status_json(c);
  if (!s.is_object() || !s.contains("services") || !s.at("services").contains("ecg-fm")) return -1;
  for (const auto& w : s.at("services").at("ecg-fm").value("workers", client::Json::array()))
    if (w.is_object() && w.value("id", "") == id) return w.value("jobs_done", int64_t{-1});
  return -1;
}

// True once worker `id` reports the sha256 of its loaded checkpoint (the cache's model identity).
bool model_known(client::Client& c, const std::string& id) {
  const client::Json s = status_json(c);
  if (!s.is_object() || !s.contains("services") || !s.at("services").contains("ecg-fm"))
    return false;
  for (const auto& w : s.at("services").at("ecg-fm").value("workers", client::Json::array()))
    if (w.is_object() && w.value("id", "") == id && w.contains("model"))
      return w.at("model").value("sha256", "").size() == 64;
  return false;
}

// A broker and one warm worker whose model identity the broker knows.
struct Cluster {
  explicit Cluster(std::vector<std::string> broker_flags = {}) : broker(std::move(broker_flags)) {
    if (!broker.ready) return;
    worker = start_worker(broker.endpoint, "w1");
    client = connect(broker.endpoint);
    ready = wait_workers(*client, {"w1"}) &&
            wait_until([&] { return model_known(*client, "w1"); }, 30s);
  }
  std::string diagnostics() {
    return broker.diagnostics() + (worker ? "\nworker: " + worker->stderr_text() : "");
  }
  Broker broker;
  std::unique_ptr<ChildProcess> worker;
  std::unique_ptr<client::Client> client;
  bool ready = false;
};

std::optional<schema::Result> run(client::Client& c, schema::Job job, const std::string& id,
                                  const std::string& meta) {
  job.id = id;
  job.meta = meta;
  return run_job(c, std::move(job));
}

TEST(BrokerCache, SameRecordAgainIsAnsweredFromTheCacheWithItsOwnIdAndMeta) {
  ECGQ_REQUIRE_BINARIES("ecgq-broker", "ecgq-worker");
  Cluster cl;
  ASSERT_TRUE(cl.ready) << cl.diagnostics();
  client::Client& c = *cl.client;
  const schema::Job record = real_record();
  ASSERT_FALSE(record.ecg.data.empty());

  auto first = run(c, record, "first", meta_of("visit 1"));
  ASSERT_TRUE(first.has_value());
  ASSERT_EQ(first->status, "ok") << (first->error ? first->error->message : "");
  EXPECT_FALSE(first->cached);
  ASSERT_TRUE(wait_until([&] { return jobs_done(c, "w1") == 1; }, 10s));

  auto second = run(c, record, "second", meta_of("visit 2, another patient file"));
  ASSERT_TRUE(second.has_value());
  ASSERT_EQ(second->status, "ok") << (second->error ? second->error->message : "");
  EXPECT_TRUE(second->cached);
  EXPECT_EQ(second->id, "second");
  EXPECT_EQ(second->meta, meta_of("visit 2, another patient file"));
  EXPECT_EQ(second->probs, first->probs);
  EXPECT_EQ(second->labels, first->labels);
  EXPECT_EQ(second->n_segments, first->n_segments);
  EXPECT_EQ(second->worker_id, "w1");
  EXPECT_EQ(second->model.sha256, first->model.sha256);
  EXPECT_EQ(second->model.precision, first->model.precision);
  EXPECT_EQ(second->attempts, 0);
  EXPECT_FALSE(second->cold_start);
  EXPECT_EQ(second->timings.queued_ms, 0);
  EXPECT_EQ(second->timings.infer_ms, 0);
  EXPECT_EQ(second->timings.preprocess_ms, 0);
  EXPECT_EQ(second->timings.load_ms, 0);
  EXPECT_GE(second->timings.total_ms, 0);
  EXPECT_EQ(jobs_done(c, "w1"), 1) << "the worker saw the cached job";

  // One sample changed by one ADC unit: a different record, computed again.
  schema::Job changed = record;
  changed.ecg.data[2 * 1000] = static_cast<char>(changed.ecg.data[2 * 1000] ^ 1);
  auto third = run(c, changed, "third", "");
  ASSERT_TRUE(third.has_value());
  EXPECT_EQ(third->status, "ok");
  EXPECT_FALSE(third->cached);
  EXPECT_TRUE(wait_until([&] { return jobs_done(c, "w1") == 2; }, 10s));

  // Asking for other outputs is another request too.
  schema::Job with_embedding = record;
  with_embedding.outputs = {"probs", "embedding"};
  auto fourth = run(c, with_embedding, "fourth", "");
  ASSERT_TRUE(fourth.has_value());
  EXPECT_FALSE(fourth->cached);
  EXPECT_FALSE(fourth->embedding.empty());

  const client::Json s = status_json(c);
  ASSERT_TRUE(s.contains("result_cache")) << s.dump();
  const client::Json& rc = s.at("result_cache");
  EXPECT_EQ(rc.value("enabled", false), true);
  EXPECT_EQ(rc.value("hits", -1), 1);
  EXPECT_EQ(rc.value("misses", -1), 3);
  EXPECT_DOUBLE_EQ(rc.value("hit_rate", -1.0), 0.25);
  EXPECT_EQ(rc.value("entries", -1), 3);
  EXPECT_EQ(rc.value("insertions", -1), 3);
  EXPECT_GT(rc.value("bytes", int64_t{0}), 0);
  EXPECT_EQ(rc.value("max_entries", -1), 10000);
  EXPECT_EQ(rc.value("ttl_ms", int64_t{-1}), 3600000);
}

TEST(BrokerCache, ErrorResultsAreNeverCached) {
  ECGQ_REQUIRE_BINARIES("ecgq-broker", "ecgq-worker");
  Cluster cl;
  ASSERT_TRUE(cl.ready) << cl.diagnostics();
  client::Client& c = *cl.client;
  // Valid for the broker, refused by the worker: shorter than one model segment.
  const schema::Job short_job = ecg_job(500);
  for (const char* id : {"short-1", "short-2"}) {
    auto r = run(c, short_job, id, "");
    ASSERT_TRUE(r.has_value());
    EXPECT_EQ(r->status, "error");
    ASSERT_TRUE(r->error.has_value());
    EXPECT_EQ(r->error->code, "too_short");
    EXPECT_FALSE(r->cached);
  }
  EXPECT_TRUE(wait_until([&] { return jobs_done(c, "w1") == 2; }, 10s));
  // A body the broker refuses itself (shape and data disagree) is not cached either.
  schema::Job bad = ecg_job(2500);
  bad.ecg.shape = {12, 2400};
  for (const char* id : {"bad-1", "bad-2"}) {
    auto r = run(c, bad, id, "");
    ASSERT_TRUE(r.has_value());
    ASSERT_TRUE(r->error.has_value());
    EXPECT_EQ(r->error->code, "bad_shape");
    EXPECT_FALSE(r->cached);
  }
  const client::Json s = status_json(c);
  EXPECT_EQ(json_int(s, {"result_cache", "entries"}), 0) << s.dump();
  EXPECT_EQ(json_int(s, {"result_cache", "hits"}), 0);
  EXPECT_EQ(json_int(s, {"result_cache", "misses"}), 2);  // the two the worker ran
}

TEST(BrokerCache, ZeroEntriesDisablesTheCache) {
  ECGQ_REQUIRE_BINARIES("ecgq-broker", "ecgq-worker");
  Cluster cl({"--result-cache-entries", "0"});
  ASSERT_TRUE(cl.ready) << cl.diagnostics();
  client::Client& c = *cl.client;
  const schema::Job job = ecg_job(2500);
  for (const char* id : {"one", "two"}) {
    auto r = run(c, job, id, "");
    ASSERT_TRUE(r.has_value());
    EXPECT_EQ(r->status, "ok");
    EXPECT_FALSE(r->cached);
  }
  EXPECT_TRUE(wait_until([&] { return jobs_done(c, "w1") == 2; }, 10s));
  const client::Json s = status_json(c);
  ASSERT_TRUE(s.contains("result_cache")) << s.dump();
  EXPECT_EQ(s.at("result_cache").value("enabled", true), false);
  EXPECT_EQ(json_int(s, {"result_cache", "hits"}), 0);
  EXPECT_EQ(json_int(s, {"result_cache", "misses"}), 0);
  EXPECT_EQ(json_int(s, {"result_cache", "entries"}), 0);
  EXPECT_EQ(json_int(s, {"result_cache", "max_entries"}), 0);
}

}  // namespace
}  // namespace ecgq::test
