// A producer (the client library) rides through a broker restart: kill -9 of the real broker
// with the producer's jobs queued, in flight, or never accepted, then a restart on the same
// endpoint; every job answered exactly once to the same Client, without resubmitting by hand.
#include <gtest/gtest.h>

#include <map>
#include <set>

#include "client/client.hpp"
#include "tests/job_ledger.hpp"
#include "tests/test_durable_broker.hpp"

namespace ecgq::test {
namespace {

// A Client and the jobs it has heard of, by id.
class Producer {
 public:
  explicit Producer(const std::string& endpoint) : client_(options(endpoint)) {}

  // Sends one job per id.
  void submit(const std::vector<std::string>& ids) {
    for (const auto& id : ids) {
      ASSERT_TRUE(client_.submit_body(id, job_body(id)).ok()) << id;
      ledger_.sent(id);
    }
  }
  // Polls until `done` holds or `limit` passes; true when it held.
  template <typename Done>
  bool poll_until(Done done, std::chrono::milliseconds limit) {
    return wait_until(
        [&] {
          auto event = client_.poll(50ms);
          EXPECT_TRUE(event.ok()) << event.status().to_string();
          if (event.ok() && event->has_value()) ledger_.record(**event);
          return done();
        },
        limit);
  }
  size_t accepted() const { return ledger_.accepted(); }
  size_t finished() const { return ledger_.finished(); }
  // FINALs received per id (more than one would be a duplicate).
  const std::map<std::string, std::vector<schema::Result>>& finals() const {
    return ledger_.finals();
  }

 private:
  static client::ClientOptions options(const std::string& endpoint) {
    client::ClientOptions o;
    o.broker = endpoint;
    o.timeout = 30s;
    return o;
  }
  client::Client client_;
  JobLedger ledger_;
};

std::vector<std::string> ids_of(const std::string& prefix, int n) {
  std::vector<std::string> ids;
  for (int i = 0; i < n; ++i) ids.push_back(prefix + std::to_string(i));
  return ids;
}

// Every id answered once, ok, and run once by `worker`.
void expect_each_once(const Producer& producer, RawWorker& worker,
                      const std::vector<std::string>& ids) {
  for (const auto& id : ids) {
    auto f = producer.finals().find(id);
    ASSERT_NE(f, producer.finals().end()) << id << " never answered";
    EXPECT_EQ(f->second.size(), 1u) << id;
    EXPECT_EQ(f->second.front().status, "ok") << id;
  }
  std::map<std::string, int> runs;
  for (const auto& r : worker.requests()) ++runs[job_of(r).id];
  for (const auto& id : ids) EXPECT_EQ(runs[id], 1) << id;
}

// A worker joins the (restarted) broker; every id must reach the producer once, ok, run once.
void answer_all(DurableBroker& broker, Producer& producer, const std::vector<std::string>& ids) {
  RawWorker worker(broker.endpoint(), "ecg-fm");
  worker.auto_final(true);
  ASSERT_TRUE(producer.poll_until([&] { return producer.finished() == ids.size(); }, 30s))
      << producer.finished() << " of " << ids.size() << " answered";
  expect_each_once(producer, worker, ids);
}

TEST(ProducerRideThrough, AcceptedQueuedJobsAreTakenOverAfterABrokerRestart) {
  TempDir dir;
  DurableBroker broker(dir.file("journal.db"));
  ASSERT_TRUE(broker.start());
  Producer producer(broker.endpoint());
  const auto ids = ids_of("queued-", 30);
  producer.submit(ids);
  ASSERT_TRUE(producer.poll_until([&] { return producer.accepted() == ids.size(); }, 20s))
      << producer.accepted() << " of " << ids.size() << " accepted";
  broker.kill9();
  ASSERT_TRUE(broker.start());
  // Every job came back from the journal, and the producer takes each over by id (mmi.job with
  // watch) on its new connection, before any worker exists.
  const auto watched = [&] {
    const std::string log = broker.proc().stderr_text();
    size_t n = 0;
    for (auto at = log.find("event=job_watched"); at != std::string::npos;
         at = log.find("event=job_watched", at + 1))
      ++n;
    return n;
  };
  ASSERT_TRUE(producer.poll_until([&] { return watched() == ids.size(); }, 20s))
      << watched() << " of " << ids.size() << " taken over";
  answer_all(broker, producer, ids);
}

TEST(ProducerRideThrough, InFlightJobsAnswerTheProducerAfterTheirSecondDispatch) {
  TempDir dir;
  DurableBroker broker(dir.file("journal.db"));
  ASSERT_TRUE(broker.start());
  const auto ids = ids_of("running-", 4);
  Producer producer(broker.endpoint());
  {
    // A worker that takes the jobs and dies with them.
    RawWorker holder(broker.endpoint(), "ecg-fm",
                     ext::encode_ready(ext::ReadyMetadata{.capacity = 8}));
    producer.submit(ids);
    ASSERT_TRUE(wait_until([&] { return holder.requests().size() == ids.size(); }, 20s));
    ASSERT_TRUE(producer.poll_until([&] { return producer.accepted() == ids.size(); }, 20s));
    broker.kill9();
  }
  ASSERT_TRUE(broker.start());
  answer_all(broker, producer, ids);
}

TEST(ProducerRideThrough, JobsNeverAcceptedAreSentAgainToABrokerWithoutAJournal) {
  // No journal: no `accepted` ever comes and the restarted broker knows nothing; the producer
  // still has every body and sends each again under its id.
  DurableBroker broker("");
  ASSERT_TRUE(broker.start());
  Producer producer(broker.endpoint());
  const auto ids = ids_of("memory-", 20);
  producer.submit(ids);
  RawClient asker(broker.endpoint());
  ASSERT_TRUE(wait_until(
      [&] {
        asker.request("mmi.status", {});
        auto status = asker.final(2s);
        if (!status) return false;
        auto s = ext::decode_status(status->at(3));
        return s.ok() && s->services.count("ecg-fm") != 0 &&
               s->services.at("ecg-fm").queued == static_cast<int64_t>(ids.size());
      },
      20s));
  broker.kill9();
  ASSERT_TRUE(broker.start());
  answer_all(broker, producer, ids);
  EXPECT_EQ(producer.accepted(), 0u);
}

}  // namespace
}  // namespace ecgq::test
