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

}  // namespace

BatchSummary run_batch(
    Client& client, const std::function<std::optional<Submission>()>& next,
    const BatchOptions& options, const std::function<void(const Outcome&)>& on_outcome,
    const std::function<void(const std::string&, const schema::Progress&)>& on_progress) {
  BatchSummary summary;
  Emitter emitter(options.ordered, on_outcome, summary);
  struct Pending {
    uint64_t seq;
    std::string path;
  };
  std::map<std::string, Pending> pending;  // by job id
  uint64_t seq = 0;
  bool source_done = false;
  const size_t window = std::max<size_t>(options.window, 1);

  auto fail_pending = [&](const Status& why) {
    std::map<uint64_t, std::pair<std::string, std::string>> by_seq;  // seq -> (id, path)
    for (auto& [id, p] : pending) by_seq.emplace(p.seq, std::make_pair(id, p.path));
    for (auto& [s, ip] : by_seq) emitter.emit(s, Outcome{ip.second, error_result(ip.first, why)});
    pending.clear();
  };

  while (true) {
    if (options.interrupted && options.interrupted()) {
      summary.interrupted = true;
      auto reply = client.cancel({}, options.cancel_wait);
      if (reply)
        summary.cancel = *reply;
      else
        spdlog::warn("event=cancel_failed error=\"{}\"", reply.status().to_string());
      // The cancelled jobs' FINALs arrived before the cancel reply: hand them out.
      while (true) {
        auto ev = client.poll(Millis(0));
        if (!ev || !ev->has_value()) break;
        auto& e = **ev;
        auto it = pending.find(e.id);
        if (!e.result || it == pending.end()) continue;
        emitter.emit(it->second.seq, Outcome{it->second.path, std::move(*e.result)});
        pending.erase(it);
      }
      emitter.flush();
      return summary;
    }
    // Fill the window lazily: a record is read only when there is room for it.
    while (!source_done && pending.size() + emitter.held() < window &&
           !(options.interrupted && options.interrupted())) {
      auto sub = next();
      if (!sub) {
        source_done = true;
        break;
      }
      const uint64_t s = seq++;
      if (!sub->job) {
        emitter.emit(s, Outcome{sub->path, error_result("", sub->job.status())});
        continue;
      }
      auto id = client.submit(std::move(sub->job.value()));
      if (!id) {
        if (id.status().is(ErrorCode::BrokerUnreachable)) {
          summary.fatal = id.status();
          emitter.emit(s, Outcome{sub->path, error_result("", id.status())});
          fail_pending(id.status());
          emitter.flush();
          return summary;
        }
        emitter.emit(s, Outcome{sub->path, error_result("", id.status())});
        continue;
      }
      pending.emplace(*id, Pending{s, sub->path});
    }
    if (source_done && pending.empty()) break;
    auto ev = client.poll(Millis(100));
    if (!ev) {
      summary.fatal = ev.status();
      fail_pending(ev.status());
      break;
    }
    if (!ev->has_value()) continue;
    JobEvent& e = **ev;
    auto it = pending.find(e.id);
    if (it == pending.end()) continue;
    if (e.progress) {
      if (on_progress) on_progress(it->second.path, *e.progress);
      continue;
    }
    if (e.result) {
      emitter.emit(it->second.seq, Outcome{it->second.path, std::move(*e.result)});
      pending.erase(it);
    }
  }
  emitter.flush();
  return summary;
}

}  // namespace ecgq::client
