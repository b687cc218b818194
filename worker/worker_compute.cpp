// The compute thread of WorkerService: the sleep policy's steps (serve, warm, sleep, wait),
// dynamic batching and results.
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <optional>

#include "common/text.hpp"
#include "common/time.hpp"
#include "worker/batch_runner.hpp"
#include "worker/worker_service.hpp"

namespace ecgq {

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
  using Step = SleepPolicy::Step;
  for (;;) {
    std::unique_lock<std::mutex> lock(queue_mutex_);
    const auto now = Clock::now();
    const Step step = policy_.next_step(now, !queue_.empty());
    // Jobs already queued are served before stopping; nothing else is started.
    if (step != Step::Serve && compute_stop_) break;
    switch (step) {
      case Step::Serve: {
        QueuedJob job = std::move(queue_.front());
        queue_.pop_front();
        const bool must_load = policy_.on_job_started(now);
        lock.unlock();
        serve_batch(std::move(job), now, must_load);
        lock.lock();
        policy_.on_job_finished(Clock::now());
        break;
      }
      case Step::Warm: {
        lock.unlock();
        auto warmed = load_model(/*warm_up_pass=*/true);
        if (warmed) {
          ready_at_ = Clock::now();
        } else {
          fail_waiting(warmed.status());
          on_load_failure(warmed.status());
        }
        break;
      }
      case Step::Sleep:
        // Decided under the queue lock: a job arriving from now on sees "asleep" and waits.
        policy_.on_sleep();
        lock.unlock();
        post_status();
        go_to_sleep();
        break;
      case Step::Wait:
        if (const auto deadline = policy_.next_deadline())
          queue_cv_.wait_until(lock, *deadline);
        else
          queue_cv_.wait(lock);
        break;
    }
  }
  compute_done_.store(true);
  const char c = 'd';
  [[maybe_unused]] auto n = ::write(wake_pipe_[1], &c, 1);
}

Expected<WarmReport> WorkerService::load_model(bool warm_up_pass) {
  WorkerState from;
  {
    std::lock_guard<std::mutex> lock(queue_mutex_);
    from = policy_.state();
    policy_.on_load_started();
  }
  post_status();
  auto loaded = lifecycle_->load(from, warm_up_pass);
  {
    std::lock_guard<std::mutex> lock(queue_mutex_);
    policy_.on_load_finished(Clock::now(), loaded.ok());
  }
  post_status();
  return loaded;
}

void WorkerService::on_load_failure(const Status& status) {
  if (!options_.exit_on_load_failure) return;
  spdlog::error("event=exiting reason=\"exit_on_load_failure: {}\"", status.message());
  load_failure_exit_.store(true);
  request_stop();
}

void WorkerService::go_to_sleep() {
  lifecycle_->unload();
  post_status();
}

bool WorkerService::admit(QueuedJob& job) {
  if (job.reply.epoch != epoch_.load()) {
    counters_.inflight--;
    spdlog::warn("event=job_dropped job={} reason=connection_lost epoch={}", job.reply.id,
                 job.reply.epoch);
    return false;
  }
  if (!job.job) {
    // A body that cannot be a job must neither trigger nor wait for a model load.
    JobContext context;
    context.received = job.received;
    context.model = lifecycle_->identity();
    post_final(job.reply, runner_.run(std::move(job.job), nullptr, context));
    return false;
  }
  return true;
}

Status WorkerService::wake_for(const QueuedJob& job) {
  spdlog::info("event=waking job={} state={}", job.reply.id, state_name(state()));
  auto warmed = load_model(/*warm_up_pass=*/false);
  if (!warmed) {
    on_load_failure(warmed.status());
    return warmed.status();
  }
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
                                        : ms_since(job.received);
    const WarmReport warm = lifecycle_->last_warm();
    context.wake_ms = wake;
    if (load_error.ok()) {
      context.load_ms = std::min(warm.load_ms, wake);
      context.download_ms = std::min(warm.download_ms, wake);
    }
  }
  return context;
}

std::optional<WorkerService::QueuedJob> WorkerService::take_more(Clock::time_point until) {
  std::unique_lock<std::mutex> lock(queue_mutex_);
  // With `capacity` jobs in hand the broker sends no more, so waiting would only add latency.
  const int64_t capacity = options_.capacity;
  queue_cv_.wait_until(lock, until, [&] {
    return !queue_.empty() || compute_stop_ || counters_.inflight.load() >= capacity;
  });
  if (queue_.empty()) return std::nullopt;
  QueuedJob job = std::move(queue_.front());
  queue_.pop_front();
  return job;
}

void WorkerService::serve_batch(QueuedJob first, Clock::time_point taken, bool must_load) {
  if (!admit(first)) return;
  if (must_load) {
    const Status load_error = wake_for(first);
    if (!load_error.ok()) {
      const JobContext context = context_for(first, load_error);
      post_final(first.reply, runner_.run(std::move(first.job), nullptr, context, load_error));
      fail_waiting(load_error);
      return;
    }
  }
  Model* model = lifecycle_->model();
  Batch batch = gather_batch(std::move(first), taken, model);
  if (model != nullptr) run_forward_passes(batch, *model);
}

WorkerService::Batch WorkerService::gather_batch(QueuedJob first, Clock::time_point taken,
                                                 Model* model) {
  Batch batch;
  add_to_batch(batch, std::move(first), model);
  // Gather more until the batch fills max_batch segments or the delay since the first job was
  // taken runs out; after a cold start the delay has usually passed, so the jobs that arrived
  // during the load join as they are. A job whose deadline (less one forward pass) falls inside
  // the window does not wait at all: it takes only what is queued already.
  const auto window_end = taken + options_.max_batch_delay;
  const double pass_ms = pass_ms_ > 0 ? pass_ms_ : lifecycle_->last_warm().warmup_ms;
  const auto pass_time = std::chrono::duration_cast<Clock::duration>(
      std::chrono::duration<double, std::milli>(pass_ms));
  while (!batch.prepared.empty() && batch.segments < runner_.max_batch()) {
    auto until = window_end;
    if (batch.earliest_deadline && *batch.earliest_deadline - pass_time < window_end)
      until = Clock::now();
    auto next = take_more(until);
    if (!next) break;
    if (admit(*next)) add_to_batch(batch, std::move(*next), model);
  }
  return batch;
}

void WorkerService::add_to_batch(Batch& batch, QueuedJob job, Model* model) {
  // Jobs that fail before the model (outputs, preprocessing, deadline) are answered at once.
  const JobContext context = context_for(job, Status::Ok());
  PreparedJob prepared = runner_.prepare(std::move(job.job), model, context);
  if (prepared.failed) {
    post_final(job.reply, runner_.finish(prepared));
    return;
  }
  batch.segments += prepared.n_segments;
  if (prepared.deadline &&
      (!batch.earliest_deadline || *prepared.deadline < *batch.earliest_deadline))
    batch.earliest_deadline = prepared.deadline;
  batch.replies.push_back(std::move(job.reply));
  batch.prepared.push_back(std::move(prepared));
}

void WorkerService::run_forward_passes(Batch& batch, Model& model) {
  if (batch.prepared.empty()) return;
  std::vector<PreparedJob*> jobs;
  for (size_t i = 0; i < batch.prepared.size(); ++i) {
    jobs.push_back(&batch.prepared[i]);
    const ReplyTo& reply = batch.replies[i];
    if (reply.id.empty()) continue;
    schema::Progress p{reply.id, "running", -1, options_.worker_id};
    post_frames(reply.epoch,
                mdp::worker_reply_frames(mdp::WorkerCommand::Partial, reply.token,
                                         {schema::encode_progress(p)}),
                reply.id, false);
  }
  const auto passes = BatchRunner(runner_.max_batch()).run_passes(jobs, model, [&](size_t i) {
    post_final(batch.replies[i], runner_.finish(batch.prepared[i]));
    std::vector<float>().swap(batch.prepared[i].segments);  // the batch may be long; free early
  });
  pass_ms_ = 0;
  for (const auto& pass : passes) pass_ms_ = std::max(pass_ms_, pass.ms);
}

void WorkerService::post_final(const ReplyTo& reply, const schema::Result& result) {
  std::string body;
  try {
    body = schema::encode_result(result);
  } catch (const std::exception& e) {
    body = schema::error_result(reply.id, "internal",
                                std::string("cannot encode the result: ") + e.what());
  }
  post_frames(reply.epoch,
              mdp::worker_reply_frames(mdp::WorkerCommand::Final, reply.token, {std::move(body)}),
              reply.id, true);
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
                 reply.id.empty() ? result.id : reply.id, err.code, err.field, result.cold_start,
                 loggable(err.message, 256));
  }
}

void WorkerService::fail_waiting(const Status& status) {
  std::deque<QueuedJob> waiting;
  {
    std::lock_guard<std::mutex> lock(queue_mutex_);
    waiting.swap(queue_);
  }
  for (auto& job : waiting) {
    if (job.reply.epoch != epoch_.load()) {
      counters_.inflight--;
      spdlog::warn("event=job_dropped job={} reason=connection_lost", job.reply.id);
      continue;
    }
    JobContext context;
    context.received = job.received;
    context.cold_start = true;
    context.wake_ms = ms_since(job.received);
    context.model = lifecycle_->identity();
    post_final(job.reply, runner_.run(std::move(job.job), nullptr, context, status));
  }
}

}  // namespace ecgq
