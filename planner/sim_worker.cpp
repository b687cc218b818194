#include "planner/sim_worker.hpp"

#include "common/time.hpp"
#include "protocol/extensions.hpp"
#include "protocol/schema.hpp"

namespace ecgq::planner {

namespace {

std::chrono::nanoseconds from_ms(double ms) {
  return std::chrono::nanoseconds(static_cast<int64_t>(ms * 1e6));
}

// The segments of a job: the planner's ids are "job-<segments>-<index>".
int segments_of(const std::string& id) {
  const size_t a = id.find('-'), b = id.find('-', a + 1);
  if (a == std::string::npos || b == std::string::npos) return 1;
  return std::max(1, std::atoi(id.substr(a + 1, b - a - 1).c_str()));
}

SleepPolicyOptions policy_options(const ClusterSpec& cluster) {
  SleepPolicyOptions o;
  o.idle_timeout = cluster.idle_timeout;
  // A warm start is simulated as a load that ended at the start (constructor).
  o.warm_on_start = false;
  return o;
}

}  // namespace

SimWorker::SimWorker(std::string worker_id, const ClusterSpec& cluster,
                     const ServiceProfile& profile, TimePoint now)
    : worker_id_(std::move(worker_id)),
      cluster_(cluster),
      profile_(profile),
      policy_(policy_options(cluster), now),
      state_since_(now) {
  if (cluster.initial_warm) {
    policy_.on_load_started();
    policy_.on_load_finished(now, true);
  } else {
    // Asleep: loaded once, then slept (the broker tells asleep and cold apart only in logs).
    policy_.on_sleep();
  }
  reported_ = policy_.state();
}

mdp::Frames SimWorker::ready() const {
  ext::ReadyMetadata m;
  m.capacity = cluster_.capacity;
  m.state = policy_.state();
  m.worker_id = worker_id_;
  return mdp::ready_frames("ecg-fm", ext::encode_ready(m));
}

mdp::Frames SimWorker::heartbeat() const {
  ext::WorkerStatus s;
  s.state = policy_.state();
  s.inflight = static_cast<int64_t>(queue_.size() + batch_.size());
  return mdp::heartbeat_frames(ext::encode_worker_status(s));
}

std::vector<mdp::Frames> SimWorker::on_message(const mdp::WorkerMessage& msg, TimePoint now) {
  std::vector<mdp::Frames> out;
  if (msg.command == mdp::WorkerCommand::Request && !msg.body.empty()) {
    auto job = schema::peek_job(msg.body[0]);
    const std::string id = job ? job->id : std::string();
    queue_.push_back(Job{msg.reply_to, id, now, policy_.job_waits_for_model(), segments_of(id)});
  } else if (msg.command == mdp::WorkerCommand::Heartbeat && !msg.body.empty()) {
    if (auto hb = ext::decode_broker_heartbeat(msg.body[0]); hb && hb->keep_warm)
      policy_.on_keep_warm(*hb->keep_warm);
  }
  if (phase_ == Phase::Idle) step(now, out);
  return out;
}

std::vector<mdp::Frames> SimWorker::on_timer(TimePoint now) {
  std::vector<mdp::Frames> out;
  if (phase_ == Phase::Loading && now >= phase_end_) {
    finish_load(phase_end_, out);
  } else if (phase_ == Phase::Computing && now >= phase_end_) {
    finish_batch(phase_end_, out);
  }
  if (phase_ == Phase::Idle) step(now, out);
  return out;
}

std::optional<TimePoint> SimWorker::next_timer() const {
  if (phase_ != Phase::Idle) return phase_end_;
  return policy_.next_deadline();
}

void SimWorker::step(TimePoint now, std::vector<mdp::Frames>& out) {
  while (phase_ == Phase::Idle) {
    switch (policy_.next_step(now, !queue_.empty())) {
      case SleepPolicy::Step::Serve:
        start_batch(now, out);
        break;
      case SleepPolicy::Step::Warm:
        batch_after_load_ = false;
        start_load(now, out);
        break;
      case SleepPolicy::Step::Sleep:
        policy_.on_sleep();
        note_state(now, out);
        break;
      case SleepPolicy::Step::Wait:
        return;
    }
  }
}

void SimWorker::start_load(TimePoint now, std::vector<mdp::Frames>& out) {
  policy_.on_load_started();
  ++loads_;
  note_state(now, out);
  phase_ = Phase::Loading;
  phase_end_ = now + from_ms(profile_.load_ms);
}

void SimWorker::finish_load(TimePoint now, std::vector<mdp::Frames>& out) {
  policy_.on_load_finished(now, true);
  note_state(now, out);
  phase_ = Phase::Idle;
  // The jobs that asked for the load run now.
  if (batch_after_load_) start_compute(now);
}

void SimWorker::start_compute(TimePoint now) {
  double forward = 0;
  int left = 0;
  for (const Job& j : batch_) left += j.segments;
  while (left > 0) {
    forward += profile_.forward(std::min(left, cluster_.max_batch));
    left -= cluster_.max_batch;
  }
  phase_ = Phase::Computing;
  phase_end_ = now + from_ms(profile_.preprocess_ms * static_cast<double>(batch_.size()) + forward);
}

void SimWorker::start_batch(TimePoint now, std::vector<mdp::Frames>& out) {
  // Jobs share a forward pass up to max_batch segments; a larger job runs alone, in passes.
  int segments = 0;
  batch_.clear();
  while (!queue_.empty() &&
         (batch_.empty() || segments + queue_.front().segments <= cluster_.max_batch)) {
    segments += queue_.front().segments;
    batch_.push_back(std::move(queue_.front()));
    queue_.pop_front();
  }
  batch_after_load_ = true;
  if (policy_.on_job_started(now)) {
    ++wakes_;
    for (Job& j : batch_) j.waited_for_model = true;
    batch_load_ms_ = profile_.load_ms;
    start_load(now, out);
    return;
  }
  batch_load_ms_ = 0;
  start_compute(now);
}

void SimWorker::finish_batch(TimePoint now, std::vector<mdp::Frames>& out) {
  for (const Job& j : batch_) {
    schema::Result r;
    r.id = j.id;
    r.worker_id = worker_id_;
    r.cold_start = j.waited_for_model;
    r.n_segments = j.segments;
    r.timings.wake_ms = j.waited_for_model ? batch_load_ms_ : 0;
    r.timings.load_ms = r.timings.wake_ms;
    r.timings.preprocess_ms = profile_.preprocess_ms;
    r.timings.total_ms = ms_between(j.received, now);
    r.timings.infer_ms = r.timings.total_ms - r.timings.wake_ms - r.timings.preprocess_ms;
    out.push_back(mdp::worker_reply_frames(mdp::WorkerCommand::Final, j.reply_to,
                                           {schema::encode_result(r)}));
  }
  batch_.clear();
  policy_.on_job_finished(now);
  phase_ = Phase::Idle;
}

void SimWorker::note_state(TimePoint now, std::vector<mdp::Frames>& out) {
  const double spent = ms_between(state_since_, now) / 1000.0;
  const bool loaded = reported_ == WorkerState::Warm || is_loading(reported_);
  (loaded ? awake_s_ : asleep_s_) += spent;
  state_since_ = now;
  if (policy_.state() == reported_) return;
  reported_ = policy_.state();
  out.push_back(heartbeat());
}

double SimWorker::awake_s(TimePoint now) const {
  const bool loaded = reported_ == WorkerState::Warm || is_loading(reported_);
  return awake_s_ + (loaded ? ms_between(state_since_, now) / 1000.0 : 0);
}

double SimWorker::asleep_s(TimePoint now) const {
  const bool loaded = reported_ == WorkerState::Warm || is_loading(reported_);
  return asleep_s_ + (loaded ? 0 : ms_between(state_since_, now) / 1000.0);
}

}  // namespace ecgq::planner
