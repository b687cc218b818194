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
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "common/duration.hpp"
#include "common/status.hpp"
#include "protocol/curve.hpp"
#include "protocol/decoded_job.hpp"
#include "protocol/protocol.hpp"
#include "protocol/worker_state.hpp"
#include "worker/job_runner.hpp"
#include "worker/lifecycle.hpp"
#include "worker/sleep_policy.hpp"

namespace zmq {
class context_t;
class message_t;
class socket_t;
}  // namespace zmq

namespace ecgq::mdp {
struct SplitMessage;
}  // namespace ecgq::mdp

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
  Millis idle_timeout{15 * 60 * 1000};  // warm and idle this long -> asleep (SleepPolicy)
  bool warm_on_start = true;            // load at start, before any job asks (SleepPolicy)
  // CURVE keys (curve_cert, broker_key); none = plaintext.
  std::optional<curve::ClientKeys> curve;
  Millis model_retry{30000};            // first delay before a failed load is retried
  bool exit_on_load_failure = false;    // stop (run() fails) when the model cannot be loaded
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
  // Builds the lifecycle, the sleep policy and the job runner from their parts.
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
  // The model state the broker is told (SleepPolicy::reported_state); takes the job-queue lock.
  WorkerState state() const;
  // The counters of the status frame.
  const WorkerCounters& counters() const { return counters_; }
  // The worker id in use (hostname-pid when not configured).
  const std::string& worker_id() const { return options_.worker_id; }

 private:
  using Clock = std::chrono::steady_clock;

  // Where a job's answers go.
  struct ReplyTo {
    std::string token;   // opaque client address frame, echoed in PARTIAL/FINAL
    uint64_t epoch = 0;  // the connection it came on; answers for an older one are dropped
    std::string id;      // the job id; "" when the body could not be decoded
  };

  // One job received from the broker and not answered yet, decoded once on receipt.
  struct QueuedJob {
    ReplyTo reply;
    Expected<schema::DecodedJob> job;  // the samples still in the received frame
    Clock::time_point received;
    bool waited = false;  // the model was not warm when it arrived
  };

  // Jobs prepared for one set of forward passes, in the order they joined.
  struct Batch {
    std::deque<ReplyTo> replies;
    std::deque<PreparedJob> prepared;
    int64_t segments = 0;
    std::optional<Clock::time_point> earliest_deadline;
  };

  // The I/O thread's view of its connection to the broker.
  struct Link {
    Clock::time_point heartbeat_at;  // next heartbeat to send
    Clock::time_point last_inbound;  // last message from the broker
    Clock::time_point reconnect_at;  // when to connect again after losing the broker
    Millis backoff;                  // the next reconnect delay
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

  // I/O thread (worker_service.cpp).
  // Opens a new connection (a new epoch) and sends READY.
  void connect_socket();
  // Closes the connection; queued jobs of its epoch are dropped (the broker re-dispatches them).
  void close_socket();
  // Sends without blocking; a full queue drops the message with a warning.
  void send(const mdp::Frames& frames);
  // Polls the socket and the wake-up pipe until the next timer; true when the socket has input.
  Expected<bool> wait_for_input(const Link& link, bool stopping);
  // Handles every message waiting on the socket; true when the broker sent DISCONNECT.
  bool receive_messages(Link& link);
  // Sends a due heartbeat, notices a silent broker, and schedules reconnects.
  void tend_link(Link& link, bool reconnect_now, bool stopping);
  // Dispatches one message from the broker by command.
  void handle_message(mdp::SplitMessage& message);
  // Decodes a job where its body frame arrived and queues it (or refuses it when stopping).
  void handle_request(const mdp::WorkerMessage& message, std::vector<zmq::message_t>& body);
  // Reads keep_warm from a broker heartbeat's status frame.
  void handle_broker_heartbeat(const mdp::WorkerMessage& message);
  // Sends what the compute thread posted for the current connection.
  void drain_outbox();
  // Empties the wake-up pipe.
  void drain_wakeup();
  // Logs the broker's refusal (frame 3 of its DISCONNECT) and acts on it: a worker whose model
  // was retired by a rollout stops; one whose model the service does not serve tries again
  // after model_retry.
  void handle_refusal(const std::string& frame, Link& link);
  // READY's metadata frame.
  std::string ready_metadata() const;
  // Sends READY again on a new connection when the loaded model names another sha256 than the
  // last READY did (an export names its source's); true when it did.
  bool reregister_if_renamed();
  // A heartbeat's status frame.
  std::string status_frame() const;

  // Compute thread (worker_compute.cpp).
  // Acts on the sleep policy's steps until stopped with no job left.
  void compute_loop();
  // Loads the model, moving the policy through warming to warm (or cold on failure).
  Expected<WarmReport> load_model(bool warm_up_pass);
  // Frees the model once the policy has marked it asleep.
  void go_to_sleep();
  // Serves `first` and the jobs that join it: wakes the model when `must_load`, gathers, runs.
  void serve_batch(QueuedJob first, Clock::time_point taken, bool must_load);
  // False (and answered or dropped) for a job of a lost connection or an undecodable body.
  bool admit(QueuedJob& job);
  // Loads the model for a job that found it cold or asleep.
  Status wake_for(const QueuedJob& job);
  // The worker-side facts of a job for its result (cold start, wake and load times).
  JobContext context_for(const QueuedJob& job, const Status& load_error) const;
  // Prepares `first` and takes more queued jobs until max_batch segments or the batch window.
  Batch gather_batch(QueuedJob first, Clock::time_point taken, Model* model);
  // Prepares a job into `batch`, or answers it at once when it fails before the model.
  void add_to_batch(Batch& batch, QueuedJob job, Model* model);
  // Posts "running", runs the batch's forward passes and posts each result as it completes.
  void run_forward_passes(Batch& batch, Model& model);
  // The next queued job, waiting until `until` at most (less when the hand is full).
  std::optional<QueuedJob> take_more(Clock::time_point until);
  // Answers every queued job with `status` (a failed load).
  void fail_waiting(const Status& status);
  // After a failed load: stops the worker when exit_on_load_failure says so.
  void on_load_failure(const Status& status);
  // Posts a job's FINAL and counts it done.
  void post_final(const ReplyTo& reply, const schema::Result& result);
  // Queues `item` for the I/O thread and wakes it.
  void post(Outgoing item);
  // Queues frames for connection `epoch`.
  void post_frames(uint64_t epoch, mdp::Frames frames, const std::string& job_id, bool final);
  // Asks the I/O thread for a status heartbeat now (the state changed).
  void post_status();

  WorkerServiceOptions options_;
  std::unique_ptr<ModelLifecycle> lifecycle_;
  JobRunner runner_;
  WorkerCounters counters_;

  std::unique_ptr<zmq::context_t> context_;
  std::unique_ptr<zmq::socket_t> socket_;
  std::atomic<uint64_t> epoch_{0};  // bumped for every new connection
  std::string ready_sha256_;        // I/O thread: the model sha256 the last READY named
  std::atomic<bool> stop_requested_{false};
  std::atomic<bool> load_failure_exit_{false};  // exit_on_load_failure: a load failed
  int wake_pipe_[2] = {-1, -1};                 // written by the compute thread and signal handlers

  // Guards queue_, compute_stop_ and policy_ (lock before outbox_mutex_): a job's arrival and the
  // policy's decisions are ordered, so a job arriving as the model goes to sleep sees it asleep.
  mutable std::mutex queue_mutex_;
  std::condition_variable queue_cv_;
  std::deque<QueuedJob> queue_;
  bool compute_stop_ = false;
  SleepPolicy policy_;
  Clock::time_point ready_at_{};  // compute thread: last successful load
  double pass_ms_ = 0;            // compute thread: longest forward pass of the last batch

  std::mutex outbox_mutex_;
  std::deque<Outgoing> outbox_;
  std::atomic<bool> compute_done_{false};
  std::thread compute_thread_;
};

// "hostname-pid", the default worker id.
std::string default_worker_id();

}  // namespace ecgq
