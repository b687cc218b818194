#include "gateway/job_store.hpp"

namespace ecgq::gateway {

void JobStore::expire(SteadyClock::time_point now, bool need_room) {
  while (!finished_order_.empty()) {
    auto it = records_.find(finished_order_.front());
    const bool over = need_room && static_cast<int64_t>(records_.size()) >= max_;
    if (it != records_.end() && now - it->second.finished < ttl_ && !over) return;
    if (it != records_.end()) records_.erase(it);
    finished_order_.pop_front();
  }
}

bool JobStore::add(const std::string& id, const std::string& owner) {
  std::lock_guard<std::mutex> lock(mutex_);
  expire(SteadyClock::now(), true);
  if (static_cast<int64_t>(records_.size()) >= max_) return false;
  records_[id] = JobRecord{id, owner, "queued", "", 0, {}};
  return true;
}

void JobStore::progress(const std::string& id, const std::string& state) {
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = records_.find(id);
  if (it == records_.end() || it->second.http_status != 0) return;
  it->second.state = state;
}

void JobStore::finish(const std::string& id, bool ok, int http_status, std::string result_json) {
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = records_.find(id);
  if (it == records_.end()) return;
  it->second.state = ok ? "done" : "failed";
  it->second.http_status = http_status;
  it->second.result_json = std::move(result_json);
  it->second.finished = SteadyClock::now();
  finished_order_.push_back(id);
}

std::optional<JobRecord> JobStore::get(const std::string& id) {
  std::lock_guard<std::mutex> lock(mutex_);
  expire(SteadyClock::now(), false);
  auto it = records_.find(id);
  if (it == records_.end()) return std::nullopt;
  return it->second;
}

size_t JobStore::size() {
  std::lock_guard<std::mutex> lock(mutex_);
  return records_.size();
}

}  // namespace ecgq::gateway
