// The ZeroMQ side of a worker: one I/O thread (DEALER to the broker, heartbeats, reconnects) and
// one compute thread (model lifecycle and jobs) joined by a job queue and an outbox.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "common/duration.hpp"
#include "protocol/protocol.hpp"
#include "common/status.hpp"
#include "worker/job_runner.hpp"
#include "worker/lifecycle.hpp"

namespace zmq {
class context_t;
class socket_t;
}  // namespace zmq

namespace ecgq {

// Everything that shapes the serving loop.
struct WorkerServiceOptions {
  std::string broker = "tcp://127.0.0.1:5555";
  std::string service = "ecg-fm";
  std::string worker_id;      // "" = hostname-pid
  int64_t capacity = 2;       // jobs the broker may hand this worker at once
  Millis max_batch_delay{0};  // how long a batch's first job may wait for more (0: never waits)
  Millis heartbeat_interval{2500};
  int64_t heartbeat_liveness = 3;  // silent intervals before the broker counts as gone
  Millis reconnect_min{250};
  Millis reconnect_max{30000};
  Millis idle_timeout{15 * 60 * 1000};  // warm and idle this long -> asleep
  bool warm_on_start = true;
};

// Counters a status heartbeat reports, readable from any thread.
struct WorkerCounters {
  std::atomic<int64_t> jobs_done{0};
  std::atomic<int64_t> inflight{0};
  std::atomic<int64_t> readies{0};  // READY messages sent (1 + re-registrations)
};

// A worker connected to one broker; run() serves until request_stop().
class WorkerService {
 public:
  // Builds the lifecycle and the job runner from their parts.
  WorkerService(WorkerServiceOptions options, LifecycleOptions lifecycle, ModelLoader loader,
                CheckpointResolver resolver, JobRunnerOptions runner);
  ~WorkerService();
  WorkerService(const WorkerService&) = delete;
  WorkerService& operator=(const WorkerService&) = delete;

  // Serves on the calling thread (the I/O thread) until stopped; jobs in hand are finished and
  // DISCONNECT sent before it returns.
  Status run();
  // Asks run() to stop; async-signal-safe, so a signal handler may call it.
  void request_stop();
  // The current model state.
  ModelState state() const { return lifecycle_->state(); }
  // The counters of the status frame.
  const WorkerCounters& counters() const { return counters_; }
  // The worker id in use (hostname-pid when not configured).
  const std::string& worker_id() const { return options_.worker_id; }

 private:
  using Clock = std::chrono::steady_clock;

  // One job received from the broker and not answered yet.
  struct QueuedJob {
    std::string token;  // opaque client address frame, echoed in PARTIAL/FINAL
    std::string body;
    std::string id;  // from peek_job; "" when unreadable
    uint64_t epoch = 0;
    Clock::time_point received;
    bool waited = false;  // the model was not warm when it arrived
  };

  // A message the compute thread wants sent: frames for one connection epoch, or a status
  // heartbeat.
  struct Outgoing {
    bool status = false;
    uint64_t epoch = 0;
    mdp::Frames frames;
    std::string job_id;
    bool final = false;
  };

  // I/O thread.
  void connect_socket();
  void close_socket();
  void send(const mdp::Frames& frames);
  void handle_message(const mdp::Frames& frames);
  void handle_request(const mdp::WorkerMessage& message);
  void handle_broker_heartbeat(const mdp::WorkerMessage& message);
  void drain_outbox();
  void drain_wakeup();
  std::string ready_metadata() const;
  std::string status_frame() const;

  // Compute thread (worker_compute.cpp).
  void compute_loop();
  void run_batch(QueuedJob first, Clock::time_point taken);
  bool admit(const QueuedJob& job);
  Status ensure_warm(const QueuedJob& job);
  JobContext context_for(const QueuedJob& job, const Status& load_error) const;
  bool take_more(Clock::time_point until, QueuedJob& out);
  void fail_waiting(const Status& status);
  void post_final(const QueuedJob& job, const schema::Result& result);
  void post(Outgoing item);
  void post_frames(uint64_t epoch, mdp::Frames frames, const std::string& job_id, bool final);
  void post_status();

  WorkerServiceOptions options_;
  std::unique_ptr<ModelLifecycle> lifecycle_;
  JobRunner runner_;
  WorkerCounters counters_;

  std::unique_ptr<zmq::context_t> context_;
  std::unique_ptr<zmq::socket_t> socket_;
  std::atomic<uint64_t> epoch_{0};  // bumped for every new connection
  std::atomic<bool> stop_requested_{false};
  int wake_pipe_[2] = {-1, -1};  // written by the compute thread and signal handlers

  std::mutex queue_mutex_;  // guards queue_, compute_stop_, keep_warm_ (lock before outbox_mutex_)
  std::condition_variable queue_cv_;
  std::deque<QueuedJob> queue_;
  bool compute_stop_ = false;
  bool keep_warm_ = false;
  std::chrono::steady_clock::time_point ready_at_{};  // compute thread: last successful warm-up
  double pass_ms_ = 0;  // compute thread: longest forward pass of the last batch

  std::mutex outbox_mutex_;
  std::deque<Outgoing> outbox_;
  std::atomic<bool> compute_done_{false};
  std::thread compute_thread_;
};

// "hostname-pid", the default worker id.
std::string default_worker_id();

}  // namespace ecgq
