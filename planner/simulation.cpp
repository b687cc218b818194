// The planner's discrete-event simulation: the real BrokerCore and SleepPolicy on simulated
// time. Events (arrivals, worker timers and heartbeats, broker ticks) are taken in time order;
// each goes through the same entry points the broker loop and the worker use, and the core's
// actions are delivered at once (the network is taken as instant: on 127.0.0.1 it is ~0.1 ms).
#include <algorithm>
#include <map>
#include <queue>

#include "broker/core.hpp"
#include "planner/plan.hpp"
#include "planner/sim_worker.hpp"
#include "protocol/schema.hpp"

namespace ecgq::planner {

namespace {

using broker::BrokerCore;

// Something due at a simulated time; `generation` drops timers that were replaced.
struct Due {
  enum class Kind { Arrival, WorkerTimer, WorkerHeartbeat, BrokerTick };
  TimePoint at;
  uint64_t order = 0;  // ties go in scheduling order
  Kind kind = Kind::Arrival;
  size_t index = 0;  // arrival or worker index
  uint64_t generation = 0;
  bool operator>(const Due& o) const { return at != o.at ? at > o.at : order > o.order; }
};

broker::BrokerConfig broker_config(const ClusterSpec& c) {
  broker::BrokerConfig config;
  config.keep_warm = c.keep_warm;
  config.max_queue = c.max_queue;
  config.max_queue_per_client = c.max_queue;
  config.service_wait = c.service_wait;
  config.log_level = "off";
  // Every simulated job has the same tiny body: a cache would answer them all.
  config.result_cache_entries = 0;
  return config;
}

// A job body the broker accepts; the planner's service times do not depend on its samples.
std::string job_body(const std::string& id, const ClusterSpec& c) {
  schema::Job job;
  job.id = id;
  job.ecg.dtype = "f32";
  job.ecg.shape = {12, 1};
  job.ecg.data.assign(12 * 4, '\0');
  job.fs = 500;
  job.leads = {"I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6"};
  if (c.deadline) job.deadline_ms = c.deadline->count();
  return schema::encode_job(job);
}

double percentile(std::vector<double>& sorted, double q) {
  if (sorted.empty()) return 0;
  const size_t i = static_cast<size_t>(q * static_cast<double>(sorted.size() - 1) + 0.5);
  return sorted[std::min(i, sorted.size() - 1)];
}

// One run: the core, the workers, the clock and what was seen.
class Simulation {
 public:
  Simulation(const ClusterSpec& cluster, const ServiceProfile& profile,
             const std::vector<Arrival>& arrivals, double duration_s)
      : duration_s_(duration_s),
        cluster_(cluster),
        profile_(profile),
        arrivals_(arrivals),
        start_(TimePoint{} + std::chrono::hours(24)),
        heartbeat_(broker_config(cluster).heartbeat_interval),
        core_(broker_config(cluster), start_,
              [n = uint64_t{0}]() mutable { return "plan-" + std::to_string(++n); }),
        arrived_at_(arrivals.size()),
        dispatched_(arrivals.size(), false) {}

  PlanResult run() {
    for (int i = 0; i < cluster_.workers; ++i) {
      workers_.emplace_back("sim-" + std::to_string(i + 1), cluster_, profile_, start_);
      timer_generation_.push_back(0);
      deliver_to_core(worker_peer(i), workers_.back().ready(), start_);
      push({start_ + heartbeat_, 0, Due::Kind::WorkerHeartbeat, static_cast<size_t>(i), 0});
    }
    for (size_t i = 0; i < arrivals_.size(); ++i)
      push({at(arrivals_[i].t_s), 0, Due::Kind::Arrival, i, 0});
    schedule_tick();
    // Until every job is answered and the planned duration has passed (worker-hours cover it).
    const TimePoint until = at(duration_s_);
    TimePoint end = start_;
    while (!due_.empty() && (finished_ < arrivals_.size() || due_.top().at <= until)) {
      Due d = due_.top();
      due_.pop();
      end = std::max(end, d.at);
      handle(d);
    }
    return summarise(std::max(end, until));
  }

 private:
  static std::string worker_peer(int i) { return std::string(1, '\0') + "w" + std::to_string(i); }
  static const std::string& client_peer() {
    static const std::string peer = std::string(1, '\0') + "producer";
    return peer;
  }
  TimePoint at(double t_s) const {
    return start_ + std::chrono::nanoseconds(static_cast<int64_t>(t_s * 1e9));
  }
  void push(Due d) {
    d.order = ++order_;
    due_.push(d);
  }
  void handle(const Due& d) {
    switch (d.kind) {
      case Due::Kind::Arrival: {
        const Arrival& a = arrivals_[d.index];
        const std::string id = "job-" + std::to_string(a.segments) + "-" + std::to_string(d.index);
        arrived_at_[d.index] = d.at;
        ++queued_;
        peak_queue_ = std::max(peak_queue_, queued_);
        deliver_to_core(
            client_peer(),
            mdp::client_frames(mdp::ClientCommand::Request, "ecg-fm", {job_body(id, cluster_)}),
            d.at);
        break;
      }
      case Due::Kind::WorkerTimer:
        if (d.generation != timer_generation_[d.index]) return;
        from_worker(d.index, workers_[d.index].on_timer(d.at), d.at);
        break;
      case Due::Kind::WorkerHeartbeat:
        deliver_to_core(worker_peer(static_cast<int>(d.index)), workers_[d.index].heartbeat(),
                        d.at);
        push({d.at + heartbeat_, 0, Due::Kind::WorkerHeartbeat, d.index, 0});
        break;
      case Due::Kind::BrokerTick:
        if (d.generation != tick_generation_) return;
        apply(core_.handle(broker::Tick{d.at}), d.at);
        break;
    }
    schedule_tick();
  }

  void deliver_to_core(const std::string& peer, mdp::Frames frames, TimePoint now) {
    apply(core_.handle(broker::Received{peer, std::move(frames), now, {}, 0}), now);
  }

  void from_worker(size_t i, std::vector<mdp::Frames> sends, TimePoint now) {
    for (auto& f : sends) deliver_to_core(worker_peer(static_cast<int>(i)), std::move(f), now);
    schedule_worker(i);
  }

  void schedule_worker(size_t i) {
    ++timer_generation_[i];
    if (auto t = workers_[i].next_timer())
      push({*t, 0, Due::Kind::WorkerTimer, i, timer_generation_[i]});
  }

  void schedule_tick() {
    const TimePoint next = core_.next_tick();
    if (next == scheduled_tick_) return;
    scheduled_tick_ = next;
    push({next, 0, Due::Kind::BrokerTick, 0, ++tick_generation_});
  }

  void apply(broker::Actions actions, TimePoint now) {
    for (auto& action : actions) {
      auto* send = std::get_if<broker::Send>(&action);
      if (send == nullptr) continue;  // no journal; Disconnects do not happen here
      if (send->peer == client_peer()) {
        to_client(send->frames, now);
        continue;
      }
      const size_t i = static_cast<size_t>(std::stoi(send->peer.substr(2)));
      auto msg = mdp::parse_worker(send->frames);
      if (!msg) continue;
      if (msg->command == mdp::WorkerCommand::Request) note_dispatch(msg->body);
      from_worker(i, workers_[i].on_message(*msg, now), now);
    }
  }

  void note_dispatch(const mdp::Frames& body) {
    if (body.empty()) return;
    auto job = schema::peek_job(body[0]);
    if (!job) return;
    const size_t index = index_of(job->id);
    if (index < dispatched_.size() && !dispatched_[index]) {
      dispatched_[index] = true;
      --queued_;
    }
  }

  static size_t index_of(const std::string& id) {
    return static_cast<size_t>(std::stoull(id.substr(id.rfind('-') + 1)));
  }

  void to_client(const mdp::Frames& frames, TimePoint now) {
    auto msg = mdp::parse_client(frames);
    if (!msg || msg->command != mdp::ClientCommand::Final || msg->body.empty()) return;
    auto r = schema::decode_result(msg->body[0]);
    if (!r || r->id.empty()) return;
    const size_t index = index_of(r->id);
    if (index >= arrivals_.size()) return;
    ++finished_;
    if (!dispatched_[index]) {
      dispatched_[index] = true;
      --queued_;
    }
    if (r->status == "ok") {
      ++result_.ok;
      if (r->cold_start) ++result_.cold_starts;
      latencies_.push_back(ms_between(arrived_at_[index], now) + profile_.transport_ms);
      return;
    }
    const std::string code = r->error ? r->error->code : "";
    if (code == "queue_full")
      ++result_.queue_full;
    else if (code == "deadline_exceeded")
      ++result_.deadline_missed;
    else
      ++result_.other_errors;
  }

  PlanResult summarise(TimePoint end) {
    PlanResult& r = result_;
    r.jobs = static_cast<int64_t>(arrivals_.size());
    std::sort(latencies_.begin(), latencies_.end());
    r.p50_ms = percentile(latencies_, 0.50);
    r.p95_ms = percentile(latencies_, 0.95);
    r.p99_ms = percentile(latencies_, 0.99);
    r.max_ms = latencies_.empty() ? 0 : latencies_.back();
    for (const SimWorker& w : workers_) {
      r.wakes += w.wakes();
      r.loads += w.loads();
      r.worker_hours_awake += w.awake_s(end) / 3600.0;
      r.worker_hours_asleep += w.asleep_s(end) / 3600.0;
    }
    r.peak_queue = peak_queue_;
    r.simulated_s = ms_between(start_, end) / 1000.0;
    return r;
  }

  double duration_s_;
  const ClusterSpec& cluster_;
  const ServiceProfile& profile_;
  const std::vector<Arrival>& arrivals_;
  TimePoint start_;
  Millis heartbeat_;  // workers' heartbeat interval (the broker's setting), fixed for the run
  BrokerCore core_;
  std::vector<SimWorker> workers_;
  std::vector<uint64_t> timer_generation_;
  std::priority_queue<Due, std::vector<Due>, std::greater<Due>> due_;
  uint64_t order_ = 0;
  TimePoint scheduled_tick_{};
  uint64_t tick_generation_ = 0;
  std::vector<TimePoint> arrived_at_;
  std::vector<bool> dispatched_;
  std::vector<double> latencies_;
  size_t finished_ = 0;
  int64_t queued_ = 0, peak_queue_ = 0;
  PlanResult result_;
};

}  // namespace

PlanResult simulate(const ClusterSpec& cluster, const ServiceProfile& profile,
                    const std::vector<Arrival>& arrivals, double duration_s) {
  return Simulation(cluster, profile, arrivals, duration_s).run();
}

}  // namespace ecgq::planner
