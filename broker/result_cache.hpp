// The broker's result cache: results of finished jobs by (job content, model sha256, precision),
// so a record submitted again is answered without running the model. LRU, bounded by entries and
// by bytes, every entry expiring a fixed time after it was stored. Plain data, no sockets.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <list>
#include <string>
#include <unordered_map>

#include "common/duration.hpp"
#include "protocol/schema.hpp"

namespace ecgq::broker {

// What a cached result is stored under: the job's content and the model that produced it.
struct CacheKey {
  std::string content;    // schema::job_content_key() of the job body
  std::string sha256;     // checkpoint sha256
  std::string precision;  // "fp32" or "bf16"
};

// The cache's bounds; max_entries == 0 disables it.
struct ResultCacheLimits {
  int64_t max_entries = 10000;
  int64_t max_bytes = int64_t{256} << 20;
  Millis ttl{3600000};
};

// Counters and sizes, as mmi.status reports them.
struct ResultCacheStats {
  uint64_t hits = 0;         // find() that returned a result
  uint64_t misses = 0;       // find() that did not (expired entries included)
  uint64_t insertions = 0;   // results stored
  uint64_t evictions = 0;    // entries dropped to stay within max_entries / max_bytes
  uint64_t expirations = 0;  // entries dropped because their ttl passed
  uint64_t entries = 0;      // entries held now
  uint64_t bytes = 0;        // bytes held now (as given to insert, plus the key)

  // hits / (hits + misses), 0 before the first lookup.
  double hit_rate() const {
    const uint64_t n = hits + misses;
    return n == 0 ? 0.0 : static_cast<double>(hits) / static_cast<double>(n);
  }
};

// LRU + TTL cache of results; single-threaded like the broker.
class ResultCache {
 public:
  using Clock = std::chrono::steady_clock;
  // The time source; tests inject one to expire entries without sleeping.
  using Now = std::function<Clock::time_point()>;

  // An empty cache with these bounds.
  explicit ResultCache(ResultCacheLimits limits, Now now = &Clock::now);

  // False when max_entries is 0: find() and insert() then do nothing and count nothing.
  bool enabled() const { return limits_.max_entries > 0; }
  // The result stored under `key` (marked most recently used), or nullptr; the pointer is valid
  // until the next call that modifies the cache.
  const schema::Result* find(const CacheKey& key);
  // Stores `result` (replacing an entry of the same key), accounted as `bytes` plus the key size,
  // then evicts least recently used entries until both bounds hold. An entry larger than
  // max_bytes on its own is not stored (returns false).
  bool insert(const CacheKey& key, schema::Result result, size_t bytes);
  // Drops every entry whose ttl has passed; cheap when none has.
  void purge_expired();

  // Counters and sizes.
  const ResultCacheStats& stats() const { return stats_; }
  // The bounds it was made with.
  const ResultCacheLimits& limits() const { return limits_; }

 private:
  struct Entry {
    schema::Result result;
    size_t bytes = 0;
    Clock::time_point expires;
    std::list<const std::string*>::iterator lru;  // position in lru_
    std::list<const std::string*>::iterator age;  // position in by_age_
  };
  using Map = std::unordered_map<std::string, Entry>;

  static std::string flat_key(const CacheKey& key);
  void erase(Map::iterator it);

  ResultCacheLimits limits_;
  Now now_;
  Map entries_;
  // Keys point into entries_ (unordered_map nodes never move). Expiry is insertion time plus one
  // ttl, so insertion order is expiry order and purging only looks at the front of by_age_.
  std::list<const std::string*> lru_;     // most recently used first
  std::list<const std::string*> by_age_;  // oldest insertion first
  ResultCacheStats stats_;
};

}  // namespace ecgq::broker
