// The gateway's side of the broker: a dedicated thread owns the Client connections (ZeroMQ
// sockets are single-threaded), so HTTP threads only queue jobs and get their results by
// callback; they never wait on the broker. The same thread refreshes mmi.status for /health.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "client/client.hpp"
#include "client/json_output.hpp"
#include "common/duration.hpp"
#include "common/time.hpp"
#include "protocol/extensions.hpp"
#include "protocol/schema.hpp"

namespace ecgq::gateway {

// How the link talks to the broker.
struct LinkOptions {
  std::string broker = "tcp://127.0.0.1:5555";
  std::optional<curve::ClientKeys> curve;  // CURVE keys for the broker; none = plaintext
  std::string service = "ecg-fm";
  int64_t connections = 1;       // Client instances, jobs spread round-robin
  Millis broker_timeout{60000};  // broker silence tolerated while jobs are outstanding
  Millis status_interval{1000};  // mmi.status refresh period
  int64_t max_in_flight = 1024;  // jobs queued or outstanding at most
};

// The broker's mmi.status as last seen.
struct StatusSnapshot {
  bool valid = false;          // an answer arrived at least once
  client::Json status;         // the decoded body (null before the first answer)
  SteadyClock::time_point at;  // when it arrived
  std::string error;           // why the last refresh failed ("" when it did not)
};

// Gets the one FINAL of a job (a local error result when the link gives up: broker_unreachable,
// timeout, deadline_exceeded, shutting_down); called on the link thread.
using JobDone = std::function<void(schema::Result result)>;
// Gets the job's PARTIALs (queued, waking, running); called on the link thread.
using JobProgress = std::function<void(const schema::Progress& progress)>;

// Gets what the broker knows of a job (mmi.job), or why it could not be asked; called on the
// link thread.
using JobLookup = std::function<void(Expected<ext::JobInfo> info)>;

// The thread and its connections; start() once, stop() (or destruction) ends every pending job.
class BrokerLink {
 public:
  // Prepares the link; nothing connects before start().
  explicit BrokerLink(LinkOptions options);
  ~BrokerLink();
  BrokerLink(const BrokerLink&) = delete;
  BrokerLink& operator=(const BrokerLink&) = delete;

  // Starts the thread (which connects and asks for mmi.status at once).
  void start();
  // Ends every pending job with shutting_down and joins the thread.
  void stop();

  // Queues `job` (its id set by the caller); false when max_in_flight jobs are pending (nothing
  // is queued then). `wait` bounds the wait for the result; `done` is called exactly once.
  bool submit(schema::Job job, Millis wait, JobDone done, JobProgress progress = {});
  // Asks the broker to cancel job `id` if it is still queued (best effort, asynchronous).
  void cancel(const std::string& id);
  // Asks the broker what it knows of job `id` (mmi.job: state, result); `done` is called once.
  void lookup(const std::string& id, JobLookup done);
  // The latest mmi.status.
  StatusSnapshot status() const;
  // Jobs queued here or outstanding at the broker.
  int64_t in_flight() const { return in_flight_.load(); }
  // Label names learned from the latest ok result (the broker's status does not carry them).
  std::vector<std::string> labels() const;

 private:
  struct Pending {
    JobDone done;
    JobProgress progress;
    SteadyClock::time_point give_up;
    bool has_deadline = false;
    size_t connection = 0;
  };
  struct Submission {
    schema::Job job;
    Millis wait;
    JobDone done;
    JobProgress progress;
  };
  void run();
  void take_inbox();
  void answer_lookups(std::vector<std::pair<std::string, JobLookup>> lookups);
  void poll_connection(size_t index);
  void expire_jobs();
  void refresh_status();
  void finish(const std::string& id, schema::Result result);
  void fail_connection(size_t index, const Status& why);

  LinkOptions options_;
  std::vector<std::unique_ptr<client::Client>> clients_;
  std::map<std::string, Pending> pending_;  // link thread only
  size_t next_connection_ = 0;
  size_t next_status_ = 0;
  SteadyClock::time_point status_due_;

  mutable std::mutex mutex_;  // guards inbox_, cancels_, lookups_, snapshot_, labels_, stopping_
  std::condition_variable wake_;
  std::deque<Submission> inbox_;
  std::vector<std::string> cancels_;
  std::vector<std::pair<std::string, JobLookup>> lookups_;
  StatusSnapshot snapshot_;
  std::vector<std::string> labels_;
  bool stopping_ = false;
  std::atomic<int64_t> in_flight_{0};
  std::thread thread_;
};

// An error result for job `id` made by the gateway itself (attempts 0).
schema::Result local_error(const std::string& id, const std::string& code,
                           const std::string& message, const std::string& field = {});

}  // namespace ecgq::gateway
