#include "broker/service_queue.hpp"

#include <algorithm>

#include "broker/state.hpp"

namespace ecgq::broker {

namespace {

// The bytes a queued job holds: its body frames.
size_t body_bytes(const JobRecord& job) {
  size_t n = 0;
  for (const auto& f : job.body) n += f.size();
  return n;
}

}  // namespace

void ServiceQueue::push_back(JobPtr job) {
  auto& fifo = by_client_[job->owner()];
  if (fifo.empty()) turn_.push_back(job->owner());
  bytes_ += body_bytes(*job);
  fifo.push_back(std::move(job));
  ++size_;
}

void ServiceQueue::push_front(JobPtr job) {
  bytes_ += body_bytes(*job);
  front_.push_front(std::move(job));
  ++size_;
}

const JobRecord* ServiceQueue::peek() const {
  if (size_ == 0) return nullptr;
  if (!front_.empty()) return front_.front().get();
  return by_client_.at(turn_.front()).front().get();
}

ServiceQueue::JobPtr ServiceQueue::pop() {
  if (size_ == 0) return nullptr;
  --size_;
  if (!front_.empty()) {
    JobPtr job = std::move(front_.front());
    front_.pop_front();
    bytes_ -= body_bytes(*job);
    return job;
  }
  const std::string client = turn_.front();
  turn_.pop_front();
  auto it = by_client_.find(client);
  JobPtr job = std::move(it->second.front());
  it->second.pop_front();
  if (it->second.empty()) {
    by_client_.erase(it);
  } else {
    turn_.push_back(client);  // the client goes to the back of the line
  }
  bytes_ -= body_bytes(*job);
  return job;
}

std::vector<ServiceQueue::JobPtr> ServiceQueue::remove_if(
    const std::function<bool(const JobRecord&)>& match) {
  std::vector<JobPtr> out;
  auto take = [&](std::deque<JobPtr>& q) {
    // The expiry sweep calls this often on long queues that usually have nothing to remove.
    if (std::none_of(q.begin(), q.end(), [&](const JobPtr& j) { return match(*j); })) return;
    auto keep =
        std::stable_partition(q.begin(), q.end(), [&](const JobPtr& j) { return !match(*j); });
    for (auto it = keep; it != q.end(); ++it) out.push_back(std::move(*it));
    q.erase(keep, q.end());
  };
  take(front_);
  for (auto it = by_client_.begin(); it != by_client_.end();) {
    take(it->second);
    if (it->second.empty()) {
      turn_.erase(std::find(turn_.begin(), turn_.end(), it->first));
      it = by_client_.erase(it);
    } else {
      ++it;
    }
  }
  size_ -= out.size();
  for (const auto& j : out) bytes_ -= body_bytes(*j);
  return out;
}

size_t ServiceQueue::position(const JobRecord& job) const {
  for (size_t i = 0; i < front_.size(); ++i)
    if (front_[i].get() == &job) return i;
  auto it = by_client_.find(job.owner());
  if (it == by_client_.end()) return size_;
  size_t k = 0;  // jobs of the same client ahead of this one
  while (k < it->second.size() && it->second[k].get() != &job) ++k;
  // Round-robin: each client ahead in turn order gets k+1 turns first, each one behind gets k.
  size_t ahead = front_.size() + k;
  bool before = true;
  for (const auto& c : turn_) {
    if (c == job.owner()) {
      before = false;
      continue;
    }
    ahead += std::min(by_client_.at(c).size(), k + (before ? 1 : 0));
  }
  return ahead;
}

size_t ServiceQueue::client_size(const std::string& client) const {
  auto it = by_client_.find(client);
  size_t n = it == by_client_.end() ? 0 : it->second.size();
  for (const auto& j : front_) n += j->owner() == client;
  return n;
}

std::optional<std::chrono::steady_clock::time_point> ServiceQueue::oldest_received() const {
  std::optional<std::chrono::steady_clock::time_point> oldest;
  const auto consider = [&](const JobPtr& job) {
    if (!oldest || job->received < *oldest) oldest = job->received;
  };
  // Each FIFO is in arrival order, so its front is its oldest; re-queued jobs may be any age.
  for (const JobPtr& job : front_) consider(job);
  for (const auto& [client, fifo] : by_client_) consider(fifo.front());
  return oldest;
}

}  // namespace ecgq::broker
