#include "client/batch.hpp"

#include <spdlog/spdlog.h>

#include <map>

namespace ecgq::client {

namespace {

schema::Result error_result(const std::string& id, const Status& s) {
  schema::Result r;
  r.id = id;
  r.status = "error";
  r.attempts = 0;
  r.error = schema::ErrorInfo{s.code(), s.message(), s.field(), std::nullopt};
  return r;
}

// Hands outcomes out, in input order when asked, and keeps the counts.
class Emitter {
 public:
  Emitter(bool ordered, const std::function<void(const Outcome&)>& sink, BatchSummary& summary)
      : ordered_(ordered), sink_(sink), summary_(summary) {}

  void emit(uint64_t seq, Outcome outcome) {
    if (!ordered_) {
      deliver(outcome);
      return;
    }
    held_.emplace(seq, std::move(outcome));
    while (!held_.empty() && held_.begin()->first == next_) {
      deliver(held_.begin()->second);
      held_.erase(held_.begin());
      ++next_;
    }
  }
  // Hands out everything held, gaps or not (the batch is ending).
  void flush() {
    for (auto& [seq, outcome] : held_) deliver(outcome);
    held_.clear();
  }
  size_t held() const { return held_.size(); }

 private:
  void deliver(const Outcome& o) {
    ++summary_.records;
    (o.result.status == "ok" ? summary_.ok : summary_.failed)++;
    if (sink_) sink_(o);
  }
  bool ordered_;
  const std::function<void(const Outcome&)>& sink_;
  BatchSummary& summary_;
  std::map<uint64_t, Outcome> held_;
  uint64_t next_ = 0;
};

// One batch: the records in flight, by job id, and what became of the others.
class BatchRun {
 public:
  BatchRun(Client& client, const BatchOptions& options,
           const std::function<void(const Outcome&)>& on_outcome,
           const std::function<void(const std::string&, const schema::Progress&)>& on_progress)
      : client_(client),
        options_(options),
        on_progress_(on_progress),
        emitter_(options.ordered, on_outcome, summary_),
        window_(std::max<size_t>(options.window, 1)) {}

  BatchSummary run(const std::function<std::optional<Submission>()>& next) {
    while (true) {
      if (interrupted()) {
        cancel();
        break;
      }
      if (!fill_window(next)) break;
      if (source_done_ && pending_.empty()) break;
      if (!wait_for_one()) break;
    }
    emitter_.flush();
    return summary_;
  }

 private:
  struct Pending {
    uint64_t seq;
    std::string path;
  };

  bool interrupted() const { return options_.interrupted && options_.interrupted(); }

  // Ctrl-C: asks the broker to cancel the batch's jobs and hands out the FINALs that came first.
  void cancel() {
    summary_.interrupted = true;
    auto reply = client_.cancel({}, options_.cancel_wait);
    if (reply)
      summary_.cancel = *reply;
    else
      spdlog::warn("event=cancel_failed error=\"{}\"", reply.status().to_string());
    // The cancelled jobs' FINALs arrived before the cancel reply: hand them out.
    while (true) {
      auto ev = client_.poll(Millis(0));
      if (!ev || !ev->has_value()) break;
      auto& e = **ev;
      auto it = pending_.find(e.id);
      if (!e.result || it == pending_.end()) continue;
      emitter_.emit(it->second.seq, Outcome{it->second.path, std::move(*e.result)});
      pending_.erase(it);
    }
  }

  // Submits records while the window has room (a record is read only when there is room for
  // it); false when the broker is unreachable and the batch must stop.
  bool fill_window(const std::function<std::optional<Submission>()>& next) {
    while (!source_done_ && pending_.size() + emitter_.held() < window_ && !interrupted()) {
      auto sub = next();
      if (!sub) {
        source_done_ = true;
        break;
      }
      const uint64_t s = seq_++;
      if (!sub->job) {
        emitter_.emit(s, Outcome{sub->path, error_result("", sub->job.status())});
        continue;
      }
      auto id = client_.submit(std::move(sub->job.value()));
      if (!id) {
        emitter_.emit(s, Outcome{sub->path, error_result("", id.status())});
        if (id.status().is(ErrorCode::BrokerUnreachable)) {
          summary_.fatal = id.status();
          fail_pending(id.status());
          return false;
        }
        continue;
      }
      pending_.emplace(*id, Pending{s, sub->path});
    }
    return true;
  }

  // Waits for the next event of a pending job; false when the client gave up on the broker.
  bool wait_for_one() {
    auto ev = client_.poll(Millis(100));
    if (!ev) {
      summary_.fatal = ev.status();
      fail_pending(ev.status());
      return false;
    }
    if (!ev->has_value()) return true;
    JobEvent& e = **ev;
    auto it = pending_.find(e.id);
    if (it == pending_.end()) return true;
    if (e.progress) {
      if (on_progress_) on_progress_(it->second.path, *e.progress);
    } else if (e.result) {
      emitter_.emit(it->second.seq, Outcome{it->second.path, std::move(*e.result)});
      pending_.erase(it);
    }
    return true;
  }

  // Every pending record fails with `why`, in input order.
  void fail_pending(const Status& why) {
    std::map<uint64_t, std::pair<std::string, std::string>> by_seq;  // seq -> (id, path)
    for (auto& [id, p] : pending_) by_seq.emplace(p.seq, std::make_pair(id, p.path));
    for (auto& [s, ip] : by_seq) emitter_.emit(s, Outcome{ip.second, error_result(ip.first, why)});
    pending_.clear();
  }

  Client& client_;
  const BatchOptions& options_;
  const std::function<void(const std::string&, const schema::Progress&)>& on_progress_;
  BatchSummary summary_;
  Emitter emitter_;
  const size_t window_;
  std::map<std::string, Pending> pending_;  // by job id
  uint64_t seq_ = 0;
  bool source_done_ = false;
};

}  // namespace

BatchSummary run_batch(
    Client& client, const std::function<std::optional<Submission>()>& next,
    const BatchOptions& options, const std::function<void(const Outcome&)>& on_outcome,
    const std::function<void(const std::string&, const schema::Progress&)>& on_progress) {
  return BatchRun(client, options, on_outcome, on_progress).run(next);
}

}  // namespace ecgq::client
