// The broker's result cache (LRU, byte bound, TTL) and the job content key it is keyed by.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <msgpack.hpp>
#include <set>

#include "broker/result_cache.hpp"
#include "broker/content_key.hpp"
#include "protocol/schema.hpp"

namespace ecgq {
namespace {

using broker::CacheKey;
using broker::ResultCache;
using broker::ResultCacheLimits;
using namespace std::chrono_literals;

// A clock the test moves by hand.
struct FakeClock {
  ResultCache::Clock::time_point t{};
  ResultCache::Now fn() {
    return [this] { return t; };
  }
};

CacheKey key(const std::string& content, const std::string& precision = "fp32") {
  return {content, std::string(64, 'a'), precision};
}

schema::Result result(float p) {
  schema::Result r;
  r.labels = {"a"};
  r.probs = {p};
  r.worker_id = "w1";
  return r;
}

TEST(ResultCache, FindsWhatWasInsertedAndCountsHitsAndMisses) {
  FakeClock clock;
  ResultCache cache(ResultCacheLimits{10, 1 << 20, 60s}, clock.fn());
  EXPECT_EQ(cache.find(key("x")), nullptr);
  ASSERT_TRUE(cache.insert(key("x"), result(0.25f), 100));
  const schema::Result* hit = cache.find(key("x"));
  ASSERT_NE(hit, nullptr);
  EXPECT_EQ(hit->probs, std::vector<float>{0.25f});
  // The model identity is part of the key.
  EXPECT_EQ(cache.find(key("x", "bf16")), nullptr);
  EXPECT_EQ(cache.find({"x", std::string(64, 'b'), "fp32"}), nullptr);
  const auto& s = cache.stats();
  EXPECT_EQ(s.hits, 1u);
  EXPECT_EQ(s.misses, 3u);
  EXPECT_EQ(s.insertions, 1u);
  EXPECT_EQ(s.entries, 1u);
  EXPECT_GE(s.bytes, 100u);
  EXPECT_DOUBLE_EQ(s.hit_rate(), 0.25);
}

TEST(ResultCache, EvictsLeastRecentlyUsedBeyondMaxEntries) {
  FakeClock clock;
  ResultCache cache(ResultCacheLimits{2, 1 << 20, 60s}, clock.fn());
  cache.insert(key("a"), result(1), 10);
  cache.insert(key("b"), result(2), 10);
  ASSERT_NE(cache.find(key("a")), nullptr);  // a is now more recent than b
  cache.insert(key("c"), result(3), 10);
  EXPECT_EQ(cache.find(key("b")), nullptr);
  EXPECT_NE(cache.find(key("a")), nullptr);
  EXPECT_NE(cache.find(key("c")), nullptr);
  EXPECT_EQ(cache.stats().evictions, 1u);
  EXPECT_EQ(cache.stats().entries, 2u);
}

TEST(ResultCache, EvictsToStayWithinMaxBytes) {
  FakeClock clock;
  const size_t key_bytes = 1 + 64 + 4 + 2;  // content, sha256, precision, separators
  ResultCache cache(ResultCacheLimits{100, static_cast<int64_t>(3 * (1000 + key_bytes)), 60s},
                    clock.fn());
  for (const char* k : {"a", "b", "c"}) ASSERT_TRUE(cache.insert(key(k), result(0), 1000));
  EXPECT_EQ(cache.stats().bytes, 3 * (1000 + key_bytes));
  EXPECT_EQ(cache.stats().evictions, 0u);
  ASSERT_TRUE(cache.insert(key("d"), result(0), 1500));  // needs room for one and a half
  EXPECT_EQ(cache.find(key("a")), nullptr);
  EXPECT_EQ(cache.find(key("b")), nullptr);
  EXPECT_NE(cache.find(key("c")), nullptr);
  EXPECT_NE(cache.find(key("d")), nullptr);
  EXPECT_EQ(cache.stats().evictions, 2u);
  EXPECT_LE(cache.stats().bytes, static_cast<uint64_t>(cache.limits().max_bytes));
  // Larger than the whole cache: refused, nothing else dropped.
  EXPECT_FALSE(cache.insert(key("e"), result(0), 1 << 20));
  EXPECT_EQ(cache.stats().entries, 2u);
}

TEST(ResultCache, ReplacingAnEntryKeepsTheAccountsRight) {
  FakeClock clock;
  ResultCache cache(ResultCacheLimits{10, 1 << 20, 60s}, clock.fn());
  cache.insert(key("a"), result(1), 100);
  cache.insert(key("a"), result(2), 300);
  EXPECT_EQ(cache.stats().entries, 1u);
  EXPECT_EQ(cache.stats().bytes, 300u + 71u);
  EXPECT_EQ(cache.find(key("a"))->probs, std::vector<float>{2});
  EXPECT_EQ(cache.stats().evictions, 0u);
}

TEST(ResultCache, EntriesExpireAfterTtlEvenWhenUsed) {
  FakeClock clock;
  ResultCache cache(ResultCacheLimits{10, 1 << 20, 1000ms}, clock.fn());
  cache.insert(key("a"), result(1), 10);
  clock.t += 600ms;
  cache.insert(key("b"), result(2), 10);
  clock.t += 399ms;
  EXPECT_NE(cache.find(key("a")), nullptr);  // 999 ms old
  clock.t += 1ms;
  EXPECT_EQ(cache.find(key("a")), nullptr);  // 1000 ms old: gone although just used
  EXPECT_NE(cache.find(key("b")), nullptr);
  EXPECT_EQ(cache.stats().expirations, 1u);
  clock.t += 600ms;
  cache.purge_expired();
  EXPECT_EQ(cache.stats().expirations, 2u);
  EXPECT_EQ(cache.stats().entries, 0u);
  EXPECT_EQ(cache.stats().bytes, 0u);
}

TEST(ResultCache, ZeroEntriesDisablesIt) {
  ResultCache cache(ResultCacheLimits{0, 1 << 20, 60s});
  EXPECT_FALSE(cache.enabled());
  EXPECT_FALSE(cache.insert(key("a"), result(1), 10));
  EXPECT_EQ(cache.find(key("a")), nullptr);
  EXPECT_EQ(cache.stats().misses, 0u);
  EXPECT_EQ(cache.stats().entries, 0u);
}

// ---- job_content_key

schema::Job job() {
  schema::Job j;
  j.ecg.dtype = "f32";
  j.ecg.shape = {2, 4};
  std::vector<float> v = {0.1f, 0.2f, 0.3f, 0.4f, 0.5f, 0.6f, 0.7f, 0.8f};
  j.ecg.data.assign(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(float));
  j.fs = 500;
  j.leads = {"I", "II"};
  return j;
}

std::string key_of(const schema::Job& j) {
  auto k = schema::job_content_key(schema::encode_job(j));
  EXPECT_TRUE(k.ok()) << k.status().to_string();
  return k ? *k : std::string();
}

std::string packed_meta(const std::string& text) {
  msgpack::sbuffer b;
  msgpack::packer<msgpack::sbuffer> pk(b);
  pk.pack_map(1);
  pk.pack(std::string("record"));
  pk.pack(text);
  return std::string(b.data(), b.size());
}

TEST(JobContentKey, IgnoresIdMetaDeadlineAndDispatch) {
  const std::string base = key_of(job());
  EXPECT_EQ(base.size(), 64u);
  schema::Job j = job();
  j.id = "another-id";
  j.meta = packed_meta("patient 7");
  j.deadline_ms = 1234;
  j.dispatch = schema::DispatchInfo{2, 17.5};
  EXPECT_EQ(key_of(j), base);
  // What the broker appends to a body does not change it either.
  EXPECT_EQ(*schema::job_content_key(
                schema::add_dispatch(schema::encode_job(job()), {3, 1.0}, "assigned")),
            base);
}

TEST(JobContentKey, IgnoresKeyOrderAndNumberEncoding) {
  // The same job written by hand with keys in another order and fs as an integer.
  const schema::Job j = job();
  msgpack::sbuffer b;
  msgpack::packer<msgpack::sbuffer> pk(b);
  pk.pack_map(5);
  pk.pack(std::string("leads"));
  pk.pack(j.leads);
  pk.pack(std::string("fs"));
  pk.pack(500);
  pk.pack(std::string("ecg"));
  pk.pack_map(3);
  pk.pack(std::string("data"));
  pk.pack_bin(static_cast<uint32_t>(j.ecg.data.size()));
  pk.pack_bin_body(j.ecg.data.data(), static_cast<uint32_t>(j.ecg.data.size()));
  pk.pack(std::string("shape"));
  pk.pack(j.ecg.shape);
  pk.pack(std::string("dtype"));
  pk.pack(j.ecg.dtype);
  pk.pack(std::string("id"));
  pk.pack(std::string("hand-made"));
  pk.pack(std::string("v"));
  pk.pack(1);
  auto k = schema::job_content_key(std::string(b.data(), b.size()));
  ASSERT_TRUE(k.ok()) << k.status().to_string();
  EXPECT_EQ(*k, key_of(job()));
}

TEST(JobContentKey, OutputsAreASet) {
  schema::Job a = job();
  a.outputs = {"probs", "embedding"};
  schema::Job b = job();
  b.outputs = {"embedding", "probs", "probs"};
  EXPECT_EQ(key_of(a), key_of(b));
  schema::Job c = job();
  c.outputs = {"probs"};
  EXPECT_NE(key_of(a), key_of(c));
  EXPECT_NE(key_of(c), key_of(job()));  // empty = the model's default, not the same request
}

TEST(JobContentKey, ChangesWithEverythingThatChangesTheResult) {
  const std::string base = key_of(job());
  std::vector<schema::Job> variants;
  {
    schema::Job j = job();
    float x;
    std::memcpy(&x, j.ecg.data.data() + 12, 4);
    x = std::nextafter(x, 1.0f);  // one sample, one ulp
    std::memcpy(&j.ecg.data[12], &x, 4);
    variants.push_back(j);
  }
  {
    schema::Job j = job();
    j.ecg.shape = {4, 2};
    j.leads = {"I", "II", "III", "aVR"};
    variants.push_back(j);
  }
  {
    schema::Job j = job();
    j.fs = 250;
    variants.push_back(j);
  }
  {
    schema::Job j = job();
    j.leads = {"II", "I"};
    variants.push_back(j);
  }
  {
    schema::Job j = job();
    j.gain = {1000};
    variants.push_back(j);
  }
  {
    schema::Job j = job();
    j.baseline = {1, 2};
    variants.push_back(j);
  }
  {
    schema::Job j = job();
    j.units = "uV";
    variants.push_back(j);
  }
  {
    schema::Job j = job();
    j.ecg.dtype = "i16";
    j.ecg.shape = {2, 8};
    variants.push_back(j);
  }
  std::set<std::string> keys{base};
  for (const auto& v : variants) keys.insert(key_of(v));
  EXPECT_EQ(keys.size(), variants.size() + 1);
}

TEST(JobContentKey, InvalidJobsGetTheDecodersError) {
  schema::Job j = job();
  j.ecg.shape = {2, 5};
  auto k = schema::job_content_key(schema::encode_job(j));
  ASSERT_FALSE(k.ok());
  EXPECT_EQ(k.status().code(), "bad_shape");
  EXPECT_EQ(k.status().field(), "ecg.data");
  EXPECT_FALSE(schema::job_content_key("not msgpack").ok());
}

}  // namespace
}  // namespace ecgq
