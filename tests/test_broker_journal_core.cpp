// The broker core's side of the journal on a fake clock: a job is queued at once but its
// REQUEST leaves only when its Dispatch record is durable (so a job in flight when the broker
// dies is always dispatched again with attempt + 1), a failed Accept withdraws the job before
// any worker sees it, and a worker lost while a REQUEST waits costs the job no attempt.
#include <gtest/gtest.h>

#include "tests/broker_core_harness.hpp"

namespace ecgq::broker::test {
namespace {

// A core that journals (the loop owns the file; the core only emits Persist actions).
Core journaled_core() {
  BrokerConfig c = test_config();
  c.journal = "journal.db";
  return Core(c);
}

// The Persist records among `actions`, in order.
std::vector<JournalRecord> records(const Actions& actions) {
  std::vector<JournalRecord> out;
  for (const auto& a : actions)
    if (const auto* p = std::get_if<Persist>(&a)) out.push_back(p->record);
  return out;
}

// The Committed event the loop sends when every record of `actions` reached the disk.
Committed all_durable(const Actions& actions, TimePoint now) {
  Committed c;
  for (const auto& r : records(actions)) {
    if (r.kind == JournalRecord::Kind::Accept) c.durable.push_back(r.job.seq);
    if (r.kind == JournalRecord::Kind::Dispatch)
      c.dispatched.push_back({r.job.seq, r.job.attempts});
  }
  c.now = now;
  return c;
}

bool has_progress(const Actions& actions, const std::string& client, const std::string& event) {
  for (const auto& p : Core::partials(actions, client))
    if (progress_of(p).event == event) return true;
  return false;
}

TEST(BrokerJournalCore, TheRequestLeavesOnlyOnceItsDispatchRecordIsDurable) {
  Core t = journaled_core();
  t.ready(kWorker1, ready_meta("w1"));
  Actions out = t.submit(kClientA, job_body("j1"));
  // Accept and Dispatch records in one turn (one transaction); nothing reaches the worker yet.
  auto written = records(out);
  ASSERT_EQ(written.size(), 2u);
  EXPECT_EQ(written[0].kind, JournalRecord::Kind::Accept);
  EXPECT_EQ(written[1].kind, JournalRecord::Kind::Dispatch);
  EXPECT_EQ(written[1].job.attempts, 1);
  EXPECT_TRUE(Core::requests(out, kWorker1).empty());
  EXPECT_FALSE(has_progress(out, kClientA, "accepted"));
  // The commit: the producer hears `accepted` and the worker gets attempt 1.
  Actions committed = t.core.handle(all_durable(out, t.now));
  EXPECT_TRUE(has_progress(committed, kClientA, "accepted"));
  auto requests = Core::requests(committed, kWorker1);
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_EQ(job_of(requests[0]).dispatch->attempt, 1);
  // A commit reported twice sends nothing twice.
  EXPECT_TRUE(Core::requests(t.core.handle(all_durable(out, t.now)), kWorker1).empty());
}

TEST(BrokerJournalCore, AFailedAcceptWithdrawsTheJobBeforeAnyWorkerSeesIt) {
  Core t = journaled_core();
  t.ready(kWorker1, ready_meta("w1"));
  Actions out = t.submit(kClientA, job_body("j1"));
  Committed failed = all_durable(out, t.now);
  failed.failed = failed.durable;
  failed.durable.clear();
  failed.failure = "disk I/O error";
  Actions answer = t.core.handle(failed);
  EXPECT_TRUE(Core::requests(answer, kWorker1).empty());
  auto finals = Core::finals(answer, kClientA);
  ASSERT_EQ(finals.size(), 1u);
  EXPECT_EQ(code_of(finals[0]), "journal_unavailable");
  // The worker's slot is free again: the next job goes to it.
  Actions next = t.submit(kClientA, job_body("j2"));
  Actions sent = t.core.handle(all_durable(next, t.now));
  auto requests = Core::requests(sent, kWorker1);
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_EQ(job_of(requests[0]).id, "j2");
}

TEST(BrokerJournalCore, AWorkerLostWhileItsRequestWaitsCostsTheJobNoAttempt) {
  Core t = journaled_core();
  t.ready(kWorker1, ready_meta("w1"));
  Actions out = t.submit(kClientA, job_body("j1"));
  ASSERT_TRUE(Core::requests(out, kWorker1).empty());
  // The worker leaves before the records commit: the REQUEST never left.
  t.received(kWorker1, mdp::disconnect_frames());
  Actions late = t.core.handle(all_durable(out, t.now));
  EXPECT_TRUE(Core::requests(late, kWorker1).empty());
  Actions again = t.ready(kWorker2, ready_meta("w2"));
  Actions sent = t.core.handle(all_durable(again, t.now));
  auto requests = Core::requests(sent, kWorker2);
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_EQ(job_of(requests[0]).dispatch->attempt, 1);
}

}  // namespace
}  // namespace ecgq::broker::test
