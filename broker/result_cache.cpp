#include "broker/result_cache.hpp"

namespace ecgq::broker {

ResultCache::ResultCache(ResultCacheLimits limits, Now now)
    : limits_(limits), now_(std::move(now)) {}

std::string ResultCache::flat_key(const CacheKey& key) {
  // '\0' cannot occur in a hex digest or a precision name, so the parts cannot run together.
  std::string k;
  k.reserve(key.content.size() + key.sha256.size() + key.precision.size() + 2);
  k.append(key.content).push_back('\0');
  k.append(key.sha256).push_back('\0');
  k.append(key.precision);
  return k;
}

void ResultCache::erase(Map::iterator it) {
  stats_.bytes -= it->second.bytes;
  lru_.erase(it->second.lru);
  by_age_.erase(it->second.age);
  entries_.erase(it);
  stats_.entries = entries_.size();
}

void ResultCache::purge_expired() {
  if (by_age_.empty()) return;
  const auto now = now_();
  while (!by_age_.empty()) {
    auto it = entries_.find(*by_age_.front());
    if (it->second.expires > now) break;
    erase(it);
    ++stats_.expirations;
  }
}

const schema::Result* ResultCache::find(const CacheKey& key) {
  if (!enabled()) return nullptr;
  purge_expired();
  auto it = entries_.find(flat_key(key));
  if (it == entries_.end()) {
    ++stats_.misses;
    return nullptr;
  }
  ++stats_.hits;
  lru_.splice(lru_.begin(), lru_, it->second.lru);
  return &it->second.result;
}

bool ResultCache::insert(const CacheKey& key, schema::Result result, size_t bytes) {
  if (!enabled()) return false;
  purge_expired();
  std::string k = flat_key(key);
  const size_t size = bytes + k.size();
  if (size > static_cast<uint64_t>(limits_.max_bytes)) return false;
  if (auto old = entries_.find(k); old != entries_.end()) erase(old);
  auto [it, inserted] = entries_.emplace(std::move(k), Entry{});
  Entry& e = it->second;
  e.result = std::move(result);
  e.bytes = size;
  e.expires = now_() + limits_.ttl;
  e.lru = lru_.insert(lru_.begin(), &it->first);
  e.age = by_age_.insert(by_age_.end(), &it->first);
  stats_.bytes += size;
  stats_.entries = entries_.size();
  ++stats_.insertions;
  // The new entry is at the front and fits on its own, so eviction stops before reaching it.
  while (entries_.size() > static_cast<uint64_t>(limits_.max_entries) ||
         stats_.bytes > static_cast<uint64_t>(limits_.max_bytes)) {
    erase(entries_.find(*lru_.back()));
    ++stats_.evictions;
  }
  return true;
}

}  // namespace ecgq::broker
