// The compute thread of WorkerService: model lifecycle, dynamic batching and results.
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <optional>

#include "worker/batch_runner.hpp"
#include "worker/worker_service.hpp"

namespace ecgq {

namespace {

using Clock = std::chrono::steady_clock;

double ms_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

}  // namespace

void WorkerService::post(Outgoing item) {
  {
    std::lock_guard<std::mutex> lock(outbox_mutex_);
    outbox_.push_back(std::move(item));
  }
  const char c = 'o';
  [[maybe_unused]] auto n = ::write(wake_pipe_[1], &c, 1);
}

void WorkerService::post_frames(uint64_t epoch, mdp::Frames frames, const std::string& job_id,
                                bool final) {
  Outgoing item;
  item.epoch = epoch;
  item.frames = std::move(frames);
  item.job_id = job_id;
  item.final = final;
  post(std::move(item));
}

void WorkerService::post_status() {
  Outgoing item;
  item.status = true;
  post(std::move(item));
}

void WorkerService::compute_loop() {
  bool warm_pending = options_.warm_on_start;
  bool auto_warm_blocked = false;  // after a failed load, only a job retries it
  auto last_activity = Clock::now();
  for (;;) {
    std::unique_lock<std::mutex> lock(queue_mutex_);
    if (!queue_.empty()) {
      QueuedJob job = std::move(queue_.front());
      queue_.pop_front();
      lock.unlock();
      run_batch(std::move(job), Clock::now());
      auto_warm_blocked = false;
      last_activity = Clock::now();
      continue;
    }
    if (compute_stop_) break;
    const ModelState s = lifecycle_->state();
    const bool unloaded = s == ModelState::Cold || s == ModelState::Asleep;
    if (unloaded && !auto_warm_blocked && (warm_pending || keep_warm_)) {
      warm_pending = false;
      lock.unlock();
      auto warmed = lifecycle_->warm();
      if (warmed) {
        ready_at_ = Clock::now();
      } else {
        auto_warm_blocked = true;
        fail_waiting(warmed.status());
      }
      last_activity = Clock::now();
      continue;
    }
    if (s == ModelState::Warm && !keep_warm_) {
      const auto deadline = last_activity + options_.idle_timeout;
      if (Clock::now() >= deadline) {
        lifecycle_->begin_sleep();  // under the queue lock: a job arriving now sees "asleep"
        lock.unlock();
        lifecycle_->finish_sleep();
        post_status();
        continue;
      }
      queue_cv_.wait_until(lock, deadline);
    } else {
      queue_cv_.wait(lock);
    }
  }
  compute_done_.store(true);
  const char c = 'd';
  [[maybe_unused]] auto n = ::write(wake_pipe_[1], &c, 1);
}

bool WorkerService::admit(const QueuedJob& job) {
  if (job.epoch != epoch_.load()) {
    counters_.inflight--;
    spdlog::warn("event=job_dropped job={} reason=connection_lost epoch={}", job.id, job.epoch);
    return false;
  }
  if (auto envelope = schema::peek_job(job.body); !envelope) {
    // A body that cannot be a job must neither trigger nor wait for a model load.
    JobContext context;
    context.received = job.received;
    context.model = lifecycle_->identity();
    post_final(job, runner_.error(job.body, context, envelope.status()));
    return false;
  }
  return true;
}

Status WorkerService::ensure_warm(const QueuedJob& job) {
  if (lifecycle_->state() == ModelState::Warm) return Status::Ok();
  spdlog::info("event=waking job={} state={}", job.id, state_name(lifecycle_->state()));
  auto warmed = lifecycle_->warm(/*warm_up_pass=*/false);
  if (!warmed) return warmed.status();
  ready_at_ = Clock::now();
  return Status::Ok();
}

JobContext WorkerService::context_for(const QueuedJob& job, const Status& load_error) const {
  JobContext context;
  context.received = job.received;
  context.cold_start = job.waited;
  context.model = lifecycle_->identity();
  if (job.waited) {
    const double wake = load_error.ok() ? std::max(0.0, ms_between(job.received, ready_at_))
                                        : ms_between(job.received, Clock::now());
    const WarmReport warm = lifecycle_->last_warm();
    context.wake_ms = wake;
    if (load_error.ok()) {
      context.load_ms = std::min(warm.load_ms, wake);
      context.download_ms = std::min(warm.download_ms, wake);
    }
  }
  return context;
}

bool WorkerService::take_more(Clock::time_point until, QueuedJob& out) {
  std::unique_lock<std::mutex> lock(queue_mutex_);
  // With `capacity` jobs in hand the broker sends no more, so waiting would only add latency.
  const int64_t capacity = options_.capacity;
  queue_cv_.wait_until(lock, until, [&] {
    return !queue_.empty() || compute_stop_ || counters_.inflight.load() >= capacity;
  });
  if (queue_.empty()) return false;
  out = std::move(queue_.front());
  queue_.pop_front();
  return true;
}

void WorkerService::run_batch(QueuedJob first, Clock::time_point taken) {
  if (!admit(first)) return;
  Status load_error = ensure_warm(first);
  if (!load_error.ok()) {
    post_final(first, runner_.run(first.body, nullptr, context_for(first, load_error), load_error));
    fail_waiting(load_error);
    return;
  }
  Model* model = lifecycle_->model();

  // Jobs that fail before the model (bad outputs, preprocessing, deadline) are answered at once;
  // the others join the batch.
  std::deque<QueuedJob> queued;
  std::deque<PreparedJob> prepared;
  int64_t segments = 0;
  std::optional<Clock::time_point> earliest_deadline;
  auto add = [&](QueuedJob job) {
    PreparedJob p = runner_.prepare(job.body, model, context_for(job, Status::Ok()));
    if (p.failed) {
      post_final(job, runner_.finish(p));
      return;
    }
    segments += p.n_segments;
    if (p.deadline && (!earliest_deadline || *p.deadline < *earliest_deadline))
      earliest_deadline = p.deadline;
    queued.push_back(std::move(job));
    prepared.push_back(std::move(p));
  };
  add(std::move(first));

  // Gather more until the batch fills max_batch segments or the delay since the first job was
  // taken runs out; after a cold start the delay has usually passed, so the jobs that arrived
  // during the load join as they are. A job whose deadline (less one forward pass) falls inside
  // the window does not wait at all: it takes only what is queued already.
  const auto window_end = taken + options_.max_batch_delay;
  const double pass_ms = pass_ms_ > 0 ? pass_ms_ : lifecycle_->last_warm().warmup_ms;
  const auto pass_time = std::chrono::duration_cast<Clock::duration>(
      std::chrono::duration<double, std::milli>(pass_ms));
  while (!prepared.empty() && segments < runner_.max_batch()) {
    auto until = window_end;
    if (earliest_deadline && *earliest_deadline - pass_time < window_end) until = Clock::now();
    QueuedJob next;
    if (!take_more(until, next)) break;
    if (admit(next)) add(std::move(next));
  }
  if (prepared.empty()) return;

  std::vector<PreparedJob*> jobs;
  for (size_t i = 0; i < prepared.size(); ++i) {
    jobs.push_back(&prepared[i]);
    if (queued[i].id.empty()) continue;
    schema::Progress p{queued[i].id, "running", -1, options_.worker_id};
    post_frames(queued[i].epoch,
                mdp::worker_reply_frames(mdp::WorkerCommand::Partial, queued[i].token,
                                         {schema::encode_progress(p)}),
                queued[i].id, false);
  }
  const auto passes = BatchRunner(runner_.max_batch()).run(jobs, *model, [&](size_t i) {
    post_final(queued[i], runner_.finish(prepared[i]));
    std::vector<float>().swap(prepared[i].segments);  // the batch may be long; free early
  });
  pass_ms_ = 0;
  for (const auto& pass : passes) pass_ms_ = std::max(pass_ms_, pass.ms);
}

void WorkerService::post_final(const QueuedJob& job, const schema::Result& result) {
  std::string body;
  try {
    body = schema::encode_result(result);
  } catch (const std::exception& e) {
    body = schema::error_result(job.id, "internal",
                                std::string("cannot encode the result: ") + e.what());
  }
  post_frames(job.epoch,
              mdp::worker_reply_frames(mdp::WorkerCommand::Final, job.token, {std::move(body)}),
              job.id, true);
  counters_.jobs_done++;
  counters_.inflight--;
  if (result.status == "ok") {
    spdlog::info(
        "event=job_done job={} status=ok segments={} batch_segments={} batch_jobs={} "
        "cold_start={} attempts={} wake_ms={:.0f} load_ms={:.0f} preprocess_ms={:.1f} "
        "infer_ms={:.1f} total_ms={:.1f}",
        result.id, result.n_segments, result.batch_segments, result.batch_jobs, result.cold_start,
        result.attempts, result.timings.wake_ms, result.timings.load_ms,
        result.timings.preprocess_ms, result.timings.infer_ms, result.timings.total_ms);
  } else {
    const auto& err = result.error ? *result.error : schema::ErrorInfo{};
    spdlog::warn("event=job_done job={} status=error code={} field={} cold_start={} message=\"{}\"",
                 job.id.empty() ? result.id : job.id, err.code, err.field, result.cold_start,
                 err.message);
  }
}

void WorkerService::fail_waiting(const Status& status) {
  std::deque<QueuedJob> waiting;
  {
    std::lock_guard<std::mutex> lock(queue_mutex_);
    waiting.swap(queue_);
  }
  for (auto& job : waiting) {
    if (job.epoch != epoch_.load()) {
      counters_.inflight--;
      spdlog::warn("event=job_dropped job={} reason=connection_lost", job.id);
      continue;
    }
    JobContext context;
    context.received = job.received;
    context.cold_start = true;
    context.wake_ms = ms_between(job.received, Clock::now());
    context.model = lifecycle_->identity();
    post_final(job, runner_.run(job.body, nullptr, context, status));
  }
}

}  // namespace ecgq
