// A service's waiting jobs: re-queued jobs first, then round-robin over per-client FIFOs so that
// one producer with a thousand jobs cannot starve another with one. A client is a job's owner():
// its CURVE key when keys are on, else its connection.
#pragma once

#include <chrono>
#include <cstddef>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace ecgq::broker {

struct JobRecord;

// Fair FIFO of jobs of one service.
class ServiceQueue {
 public:
  using JobPtr = std::shared_ptr<JobRecord>;

  // Appends a job at the back of its client's FIFO.
  void push_back(JobPtr job);
  // Puts a job ahead of everything (re-dispatch after a lost worker keeps its place in line).
  void push_front(JobPtr job);
  // Takes the next job to dispatch, or nullptr when empty.
  JobPtr pop();
  // The job pop() would return, left in place; nullptr when empty.
  const JobRecord* peek() const;
  // Removes and returns every job for which `match` holds, in queue order.
  std::vector<JobPtr> remove_if(const std::function<bool(const JobRecord&)>& match);
  // How many jobs pop() would return before `job` if nothing else arrived.
  size_t position(const JobRecord& job) const;
  // Queued jobs in total.
  size_t size() const { return size_; }
  // Bytes of the queued jobs' bodies in total.
  size_t bytes() const { return bytes_; }
  // Queued jobs of one client (a JobRecord::owner()).
  size_t client_size(const std::string& client) const;
  // Clients with queued jobs.
  size_t clients() const { return by_client_.size(); }
  // True when nothing is queued.
  bool empty() const { return size_ == 0; }
  // The receipt time of the job waiting longest, or nullopt when nothing is queued.
  std::optional<std::chrono::steady_clock::time_point> oldest_received() const;

 private:
  std::deque<JobPtr> front_;                             // re-queued jobs, served first
  std::map<std::string, std::deque<JobPtr>> by_client_;  // non-empty FIFOs only
  std::deque<std::string> turn_;                         // clients in round-robin order
  size_t size_ = 0;
  size_t bytes_ = 0;
};

}  // namespace ecgq::broker
