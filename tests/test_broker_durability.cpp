// The durable journal through the real broker process: kill -9 with jobs queued, in flight and
// finished, then a restart on the same journal; each job answered exactly once, by id
// (mmi.job); idempotent re-submits; journal_full and a journal that cannot be written.
#include <gtest/gtest.h>
#include <signal.h>

#include <map>

#include "protocol/extensions.hpp"
#include "tests/test_broker_peers.hpp"
#include "tests/test_durable_broker.hpp"

namespace ecgq::test {
namespace {

// mmi.job for `ids`, decoded.
std::map<std::string, ext::JobInfo> ask(RawClient& c, const std::vector<std::string>& ids) {
  std::map<std::string, ext::JobInfo> out;
  auto body = c.mmi("mmi.job", ext::encode_job_query({ids}));
  if (!body) return out;
  auto reply = ext::decode_job_reply(*body);
  if (!reply) return out;
  for (auto& j : reply->jobs) out[j.id] = j;
  return out;
}

// Waits until every id is done (asking mmi.job); true when they all are.
bool all_done(RawClient& c, const std::vector<std::string>& ids) {
  return wait_until(
      [&] {
        auto states = ask(c, ids);
        for (const auto& id : ids)
          if (states[id].state != "done") return false;
        return true;
      },
      20s);
}

// Submits `ids` and waits for each one's `accepted` PARTIAL.
void submit_accepted(RawClient& c, const std::vector<std::string>& ids) {
  for (const auto& id : ids) c.request("ecg-fm", {job_body(id)});
  size_t accepted = 0;
  while (accepted < ids.size()) {
    auto m = c.recv(10s);
    ASSERT_TRUE(m.has_value()) << "accepted " << accepted << " of " << ids.size();
    ASSERT_EQ((*m)[1], byte(0x02)) << "expected PARTIAL accepted";
    auto p = schema::decode_progress((*m)[3]);
    ASSERT_TRUE(p.ok());
    if (p->event == "accepted") ++accepted;
  }
}

// mmi.status, decoded.
ext::BrokerStatus status_of(RawClient& c) {
  auto body = c.mmi("mmi.status", "");
  if (!body) return {};
  auto s = ext::decode_status(*body);
  EXPECT_TRUE(s.ok()) << s.status().to_string();
  return s.ok() ? *s : ext::BrokerStatus{};
}

std::vector<std::string> ids_of(const std::string& prefix, int n) {
  std::vector<std::string> ids;
  for (int i = 0; i < n; ++i) ids.push_back(prefix + std::to_string(i));
  return ids;
}

std::map<std::string, int> executions(RawWorker& w) {
  std::map<std::string, int> n;
  for (const auto& r : w.requests()) ++n[job_of(r).id];
  return n;
}

TEST(BrokerDurability, QueuedJobsSurviveKillMinus9AndRunOnceAfterRestart) {
  TempDir dir;
  DurableBroker broker(dir.file("journal.db"));
  ASSERT_TRUE(broker.start());
  const auto ids = ids_of("q", 40);
  {
    RawClient producer(broker.endpoint());
    submit_accepted(producer, ids);
  }
  broker.kill9();
  ASSERT_TRUE(broker.start());
  RawWorker worker(broker.endpoint(), "ecg-fm");
  worker.auto_final(true);
  RawClient asker(broker.endpoint());
  ASSERT_TRUE(all_done(asker, ids));
  auto n = executions(worker);
  EXPECT_EQ(n.size(), ids.size());
  for (const auto& id : ids) EXPECT_EQ(n[id], 1) << id;
  // In acceptance order: the first queued job ran first.
  ASSERT_FALSE(worker.requests().empty());
  EXPECT_EQ(job_of(worker.requests().front()).id, "q0");
  // `ecgq result` prints them like submit does; an id the broker never saw says so (exit 1).
  auto r = run_command({bin("ecgq"), "--broker", broker.endpoint(), "result", "q0", "nope"}, 20s);
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_NE(r.out.find(R"("id":"q0")"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find(R"("state":"done")"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find(R"({"id":"nope","state":"unknown")"), std::string::npos) << r.out;
}

TEST(BrokerDurability, InFlightJobsRunAgainAndFinishedOnesKeepTheirResults) {
  TempDir dir;
  DurableBroker broker(dir.file("journal.db"));
  ASSERT_TRUE(broker.start());
  RawClient producer(broker.endpoint());
  {
    RawWorker first(broker.endpoint(), "ecg-fm");
    first.auto_final(true);
    submit_accepted(producer, {"done-1"});
    ASSERT_TRUE(producer.final(10s).has_value());
    first.auto_final(false);  // now it takes the next job and never answers
    submit_accepted(producer, {"running-1"});
    auto request = first.next(10s);
    ASSERT_TRUE(request.has_value());
    EXPECT_EQ(job_of(*request).dispatch->attempt, 1);
    // At once: the REQUEST left only after its Dispatch record was durable.
    broker.kill9();
  }
  ASSERT_TRUE(broker.start());
  RawWorker worker(broker.endpoint(), "ecg-fm");
  worker.auto_final(true);
  RawClient asker(broker.endpoint());
  ASSERT_TRUE(all_done(asker, {"done-1", "running-1"}));
  auto states = ask(asker, {"done-1", "running-1", "never-seen"});
  // Dispatched again with attempt + 1, however soon after the first dispatch the broker died.
  EXPECT_EQ(states["running-1"].attempts, 2);
  for (const auto& r : worker.requests()) {
    if (job_of(r).id == "running-1") {
      EXPECT_EQ(job_of(r).dispatch->attempt, 2);
    }
  }
  EXPECT_FALSE(states["done-1"].result.empty());
  EXPECT_EQ(states["never-seen"].state, "unknown");
  auto n = executions(worker);
  EXPECT_EQ(n.count("done-1"), 0u);  // a finished job is not run again
  EXPECT_EQ(n["running-1"], 1);
}

TEST(BrokerDurability, TheSameIdAgainIsOneExecutionWithTheSameResult) {
  TempDir dir;
  DurableBroker broker(dir.file("journal.db"));
  ASSERT_TRUE(broker.start());
  RawWorker worker(broker.endpoint(), "ecg-fm");
  worker.auto_final(true);
  RawClient a(broker.endpoint());
  submit_accepted(a, {"same"});
  auto first = a.final(10s);
  ASSERT_TRUE(first.has_value());
  RawClient b(broker.endpoint());
  b.request("ecg-fm", {job_body("same")});
  auto second = b.final(10s);
  ASSERT_TRUE(second.has_value());
  EXPECT_EQ((*second)[3], (*first)[3]);
  EXPECT_EQ(executions(worker)["same"], 1);
}

TEST(BrokerDurability, AFullJournalRefusesNewJobsAtOnce) {
  TempDir dir;
  DurableBroker broker(dir.file("journal.db"), {"--journal-max-bytes", "64KiB"});
  ASSERT_TRUE(broker.start());
  RawClient c(broker.endpoint());
  // Bodies of 20 KB: the journal file itself starts near 16 KB, so the fourth cannot fit.
  std::string code;
  for (int i = 0; i < 8 && code.empty(); ++i) {
    schema::Job j = job_of({"", "", "", "", job_body("big" + std::to_string(i))});
    j.ecg.shape = {1, 5000};
    j.ecg.data = std::string(20000, '\0');
    c.request("ecg-fm", {schema::encode_job(j)});
    while (auto m = c.recv(10s)) {
      if ((*m)[1] == byte(0x03)) {
        code = code_of(m);
        break;
      }
      if (schema::decode_progress((*m)[3])->event == "accepted") break;
    }
  }
  EXPECT_EQ(code, "journal_full");
  // mmi.status and `ecgq status` say so, with the bound.
  const ext::JournalInfo j = status_of(c).journal;
  EXPECT_EQ(j.state, "full");
  EXPECT_EQ(j.max_bytes, 64 * 1024);
  EXPECT_NE(j.last_error.find("journal_max_bytes"), std::string::npos) << j.last_error;
  auto text = run_command({bin("ecgq"), "--broker", broker.endpoint(), "status"}, 20s);
  EXPECT_NE(text.out.find("journal: full"), std::string::npos) << text.out << text.err;
}

TEST(BrokerDurability, AJournalThatCannotBeWrittenRefusesNewJobsAndTheBrokerKeepsServing) {
  TempDir dir;
  DurableBroker broker(dir.file("journal.db"));
  // A 200 KiB file-size limit on the broker process: writing a 1 MB job fails like a full disk.
  ASSERT_TRUE(broker.start("ulimit -f 400;"));
  RawClient c(broker.endpoint());
  schema::Job j = job_of({"", "", "", "", job_body("huge")});
  j.ecg.shape = {1, 250000};
  j.ecg.data = std::string(1000000, '\0');
  c.request("ecg-fm", {schema::encode_job(j)});
  auto final = c.final(10s);
  ASSERT_TRUE(final.has_value());
  EXPECT_EQ(code_of(final), "journal_unavailable");
  const ext::JournalInfo broken = status_of(c).journal;
  EXPECT_EQ(broken.state, "unavailable");
  EXPECT_FALSE(broken.last_error.empty());
  // The broker still serves: a small job after the failure is accepted and runs.
  RawWorker worker(broker.endpoint(), "ecg-fm");
  worker.auto_final(true);
  submit_accepted(c, {"small"});
  auto done = c.final(10s);
  ASSERT_TRUE(done.has_value());
  EXPECT_EQ(result_of(*done).status, "ok");
  EXPECT_EQ(status_of(c).journal.state, "ok");
  EXPECT_TRUE(broker.proc().running());
}

TEST(BrokerDurability, MmiStatusShowsTheJournal) {
  TempDir dir;
  DurableBroker broker(dir.file("journal.db"), {"--journal-sync", "normal"});
  ASSERT_TRUE(broker.start());
  RawClient c(broker.endpoint());
  submit_accepted(c, {"held-1", "held-2"});
  const ext::JournalInfo j = status_of(c).journal;
  EXPECT_TRUE(j.enabled);
  EXPECT_EQ(j.path, dir.file("journal.db"));
  EXPECT_EQ(j.sync, "normal");
  EXPECT_EQ(j.state, "ok");
  EXPECT_EQ(j.last_error, "");
  EXPECT_EQ(j.jobs, 2);
  EXPECT_GT(j.bytes, 0);
  EXPECT_EQ(j.max_bytes, int64_t{2} << 30);
  EXPECT_GE(j.transactions, 1);
  EXPECT_GE(j.records, 2);
  auto text = run_command({bin("ecgq"), "--broker", broker.endpoint(), "status"}, 20s);
  ASSERT_EQ(text.exit_code, 0) << text.err;
  EXPECT_NE(text.out.find("journal: ok, " + dir.file("journal.db") + " (sync normal)"),
            std::string::npos)
      << text.out;
  EXPECT_NE(text.out.find("2 jobs"), std::string::npos) << text.out;
}

TEST(BrokerDurability, TheDeadLetterListSurvivesARestart) {
  TempDir dir;
  DurableBroker broker(dir.file("journal.db"), {"--max-attempts", "1"});
  ASSERT_TRUE(broker.start());
  {
    RawClient producer(broker.endpoint());
    RawWorker failing(broker.endpoint(), "ecg-fm");
    submit_accepted(producer, {"poison"});
    auto request = failing.next(10s);
    ASSERT_TRUE(request.has_value());
    failing.final((*request)[2], {schema::error_result("poison", "model_error", "boom")});
    auto final = producer.final(10s);
    ASSERT_TRUE(final.has_value());
    EXPECT_EQ(code_of(final), "model_error");
    ASSERT_EQ(status_of(producer).dead_letters.size(), 1u);
    // Killed once its four records (Accept, Dispatch, Finish, DeadLetter) are on disk: the
    // client's FINAL does not wait for the last two.
    ASSERT_TRUE(wait_until([&] { return status_of(producer).journal.records >= 4; }, 10s));
  }
  broker.kill9();
  ASSERT_TRUE(broker.start());
  RawClient asker(broker.endpoint());
  const auto letters = status_of(asker).dead_letters;
  ASSERT_EQ(letters.size(), 1u);
  EXPECT_EQ(letters[0].id, "poison");
  EXPECT_EQ(letters[0].code, "model_error");
  ASSERT_EQ(letters[0].attempts.size(), 1u);
  EXPECT_EQ(letters[0].attempts[0].message, "boom");
  auto dlq = run_command({bin("ecgq"), "--broker", broker.endpoint(), "dlq", "--json"}, 20s);
  ASSERT_EQ(dlq.exit_code, 0) << dlq.err;
  EXPECT_NE(dlq.out.find(R"("id": "poison")"), std::string::npos) << dlq.out;
  // Its result is still readable by id, and it is not run again.
  EXPECT_EQ(ask(asker, {"poison"})["poison"].state, "failed");
}

}  // namespace
}  // namespace ecgq::test
