// The gateway's own record of the ?async=1 jobs it submitted, for GET /jobs/ID until the broker's
// mmi.job service (results by id) exists: bounded in count, finished records expire after job_ttl,
// each readable only with the token that submitted it. Records live in this process only: a
// restarted gateway forgets them (mmi.job will not).
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <string>

#include "common/duration.hpp"
#include "common/time.hpp"

namespace ecgq::gateway {

// One async job as GET /jobs/ID shows it.
struct JobRecord {
  std::string id;
  std::string owner;        // token name ("" without tokens)
  std::string state;        // queued, running, done, failed
  std::string result_json;  // the /predict answer body once finished
  int http_status = 0;      // the status /predict would have answered with
  SteadyClock::time_point finished;
};

// Thread-safe store of job records.
class JobStore {
 public:
  // At most `max_records` records; finished ones are dropped `ttl` after they finish.
  JobStore(int64_t max_records, Millis ttl) : max_(max_records), ttl_(ttl) {}
  // Adds a queued record; false when the store is full of unfinished jobs.
  bool add(const std::string& id, const std::string& owner);
  // Moves a record to `state` (queued, running) unless it finished already.
  void progress(const std::string& id, const std::string& state);
  // Finishes a record with its answer.
  void finish(const std::string& id, bool ok, int http_status, std::string result_json);
  // The record, if held.
  std::optional<JobRecord> get(const std::string& id);
  // Records held now.
  size_t size();

 private:
  // Drops finished records past their ttl, and with `need_room` the oldest finished ones while
  // the store is full.
  void expire(SteadyClock::time_point now, bool need_room);
  std::mutex mutex_;
  int64_t max_;
  Millis ttl_;
  std::map<std::string, JobRecord> records_;
  std::deque<std::string> finished_order_;  // ids in the order they finished
};

}  // namespace ecgq::gateway
