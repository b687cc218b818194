// What a producer heard about each of its jobs, by id: sent, accepted (the journal has it),
// FINALs. The fault-injection suite and the ride-through tests check "every accepted job answered
// exactly once" against it and print its counts.
#pragma once

#include <gtest/gtest.h>

#include <cstdio>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "client/client.hpp"

namespace ecgq::test {

// Jobs by id and what happened to them.
class JobLedger {
 public:
  // A job sent under `id`.
  void sent(const std::string& id) { sent_.insert(id); }
  // Takes a client event: PARTIAL accepted, or a FINAL.
  void record(const client::JobEvent& e) {
    if (e.progress && e.progress->event == "accepted") accepted_.insert(e.id);
    if (e.result) finals_[e.id].push_back(*e.result);
  }
  size_t sent() const { return sent_.size(); }
  // Whether the broker said job `id` is durable.
  bool was_accepted(const std::string& id) const { return accepted_.count(id) != 0; }
  size_t accepted() const { return accepted_.size(); }
  size_t finished() const { return finals_.size(); }
  // FINALs received per id (more than one would be a duplicate).
  const std::map<std::string, std::vector<schema::Result>>& finals() const { return finals_; }

  // The invariant: every job sent (accepted or not) answered exactly once, no answer for a job
  // never sent, and every error one of `allowed` codes.
  void expect_each_answered_once(const std::set<std::string>& allowed = {}) const {
    for (const auto& id : sent_) {
      auto f = finals_.find(id);
      if (f == finals_.end()) {
        ADD_FAILURE() << id << (accepted_.count(id) ? " (accepted)" : "") << " never answered";
        continue;
      }
      EXPECT_EQ(f->second.size(), 1u) << id << " answered more than once";
      const auto& r = f->second.front();
      if (r.error) {
        EXPECT_TRUE(allowed.count(r.error->code))
            << id << ": " << r.error->code << ": " << r.error->message;
      }
    }
    for (const auto& [id, results] : finals_) {
      EXPECT_TRUE(sent_.count(id)) << id << " never sent";
    }
  }

  // Prints the counts (`extra` is appended: the broker's and client's duplicate and re-dispatch
  // figures the caller gathered).
  void print(const char* scenario, const std::string& extra) const {
    size_t ok = 0, redispatched = 0;
    std::map<std::string, size_t> errors;
    for (const auto& [id, results] : finals_) {
      const auto& r = results.front();
      r.error ? ++errors[r.error->code] : ++ok;
      redispatched += r.attempts > 1;
    }
    std::string codes;
    for (const auto& [code, n] : errors) codes += " " + code + "=" + std::to_string(n);
    std::printf(
        "FAULTS %s: sent=%zu accepted=%zu answered=%zu ok=%zu errors={%s } "
        "results_with_attempts>1=%zu %s\n",
        scenario, sent_.size(), accepted_.size(), finals_.size(), ok, codes.c_str(), redispatched,
        extra.c_str());
    std::fflush(stdout);
  }

 private:
  std::set<std::string> sent_;
  std::set<std::string> accepted_;
  std::map<std::string, std::vector<schema::Result>> finals_;
};

}  // namespace ecgq::test
