#include "worker/sleep_policy.hpp"

#include <algorithm>

namespace ecgq {

SleepPolicy::SleepPolicy(SleepPolicyOptions options, TimePoint now)
    : options_(options),
      warm_pending_(options.warm_on_start),
      last_activity_(now),
      retry_at_(now),
      retry_delay_(options.model_retry) {}

bool SleepPolicy::on_job_started(TimePoint now) {
  serving_ = true;
  last_activity_ = now;
  return state_ != WorkerState::Warm;
}

void SleepPolicy::on_job_finished(TimePoint now) {
  serving_ = false;
  last_activity_ = now;
}

bool SleepPolicy::on_keep_warm(bool keep) {
  const bool changed = keep_warm_ != keep;
  keep_warm_ = keep;
  return changed;
}

void SleepPolicy::on_load_started() {
  retrying_ = state_ == WorkerState::Failed;
  state_ = WorkerState::Warming;
  // Any load satisfies warm_on_start: a job that beat the first warm-up to it must not leave
  // a pending warm-up that would reload the model after its first sleep.
  warm_pending_ = false;
}

void SleepPolicy::on_load_finished(TimePoint now, bool ok) {
  last_activity_ = now;
  retrying_ = false;
  if (!ok) {
    on_load_failed(now);
    return;
  }
  state_ = WorkerState::Warm;
  retry_delay_ = options_.model_retry;
}

void SleepPolicy::on_load_failed(TimePoint now) {
  // A checkpoint that failed to load would fail again at once: the retries back off, so a
  // missing file or an offline hub costs one attempt per delay, not a busy loop.
  state_ = WorkerState::Failed;
  warm_pending_ = false;
  retry_at_ = now + retry_delay_;
  retry_delay_ = std::min(retry_delay_ * 2, options_.model_retry * 8);
}

bool SleepPolicy::should_retry(TimePoint now) const {
  return state_ == WorkerState::Failed && !serving_ && now >= retry_at_;
}

void SleepPolicy::on_sleep() {
  state_ = WorkerState::Asleep;
}

bool SleepPolicy::should_warm() const {
  const bool unloaded = state_ == WorkerState::Cold || state_ == WorkerState::Asleep;
  return unloaded && !serving_ && (warm_pending_ || keep_warm_);
}

bool SleepPolicy::should_sleep(TimePoint now) const {
  const auto deadline = next_deadline();
  return state_ == WorkerState::Warm && deadline && now >= *deadline;
}

std::optional<SleepPolicy::TimePoint> SleepPolicy::next_deadline() const {
  if (state_ == WorkerState::Failed && !serving_) return retry_at_;
  if (state_ != WorkerState::Warm || keep_warm_ || serving_) return std::nullopt;
  return last_activity_ + options_.idle_timeout;
}

SleepPolicy::Step SleepPolicy::next_step(TimePoint now, bool jobs_queued) const {
  // Queued jobs come first: a job that arrived before the sleep began keeps the model awake.
  if (jobs_queued) return Step::Serve;
  if (should_warm() || should_retry(now)) return Step::Warm;
  if (should_sleep(now)) return Step::Sleep;
  return Step::Wait;
}

const char* step_name(SleepPolicy::Step step) {
  switch (step) {
    case SleepPolicy::Step::Serve:
      return "serve";
    case SleepPolicy::Step::Warm:
      return "warm";
    case SleepPolicy::Step::Sleep:
      return "sleep";
    case SleepPolicy::Step::Wait:
      return "wait";
  }
  return "unknown";
}

}  // namespace ecgq
