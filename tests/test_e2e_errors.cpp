// End to end: each kind of failure comes back as its own error result, and a normal job right
// after it still succeeds.
#include "tests/test_e2e_cluster.hpp"

namespace ecgq::test {
namespace {

void expect_error(const std::optional<schema::Result>& r, const std::string& code,
                  const std::string& field = "") {
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, "error");
  ASSERT_TRUE(r->error.has_value());
  EXPECT_EQ(r->error->code, code) << r->error->message;
  EXPECT_EQ(r->error->field, field) << r->error->message;
  EXPECT_FALSE(r->error->message.empty());
}

void expect_ok(client::Client& c) {
  auto r = run_job(c, ecg_job());
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, "ok") << (r->error ? r->error->message : "");
  EXPECT_EQ(r->probs.size(), 17u);
}

// One broker and one warm worker for the request-level errors.
class E2eErrors : public ::testing::Test {
 protected:
  void SetUp() override {
    ECGQ_REQUIRE_BINARIES("ecgq-broker", "ecgq-worker");
    broker_ = std::make_unique<Broker>(std::vector<std::string>{"--service-wait", "300ms"});
    ASSERT_TRUE(broker_->ready) << broker_->diagnostics();
    worker_ = start_worker(broker_->endpoint, "w1");
    client_ = connect(broker_->endpoint);
    ASSERT_TRUE(wait_workers(*client_, {"w1"})) << worker_->stderr_text();
  }
  std::unique_ptr<Broker> broker_;
  std::unique_ptr<ChildProcess> worker_;
  std::unique_ptr<client::Client> client_;
};

TEST_F(E2eErrors, MalformedBody) {
  const std::string id = client_->next_id();
  ASSERT_TRUE(client_->submit_body(id, "this is not msgpack").ok());
  auto r = wait_result(*client_, id);
  expect_error(r, "bad_request");
  expect_ok(*client_);
}

TEST_F(E2eErrors, WrongShape) {
  schema::Job job = ecg_job();
  job.ecg.shape = {12, 2501};  // one sample more than the data holds
  auto r = run_job(*client_, job);
  expect_error(r, "bad_shape", "ecg.data");
  job = ecg_job();
  job.leads.pop_back();  // 11 names for 12 rows
  expect_error(run_job(*client_, job), "bad_request", "leads");
  expect_ok(*client_);
}

TEST_F(E2eErrors, UnknownService) {
  const std::string id = client_->next_id();
  schema::Job job = ecg_job();
  job.id = id;
  // Checked before it is sent: no worker, not a service the broker serves.
  const Status refused = client_->submit_body(id, schema::encode_job(job), "no-such-service");
  EXPECT_TRUE(refused.is(ErrorCode::NoWorker)) << refused.to_string();
  EXPECT_NE(refused.message().find("known services: ecg-fm"), std::string::npos)
      << refused.message();
  expect_ok(*client_);
}

TEST_F(E2eErrors, RecordTooShortForTheModel) {
  expect_error(run_job(*client_, ecg_job(500)), "too_short", "ecg");
  expect_ok(*client_);
}

TEST_F(E2eErrors, DeadlineExceededWhileQueued) {
  // The worker is busy with a long record, so a job with a tiny budget expires, in the broker's
  // queue or in the worker's (capacity 2): both name the field.
  auto long_id = client_->submit(ecg_job(500 * 120));
  ASSERT_TRUE(long_id.ok());
  schema::Job hurried = ecg_job();
  hurried.deadline_ms = 1;
  auto hurried_id = client_->submit(hurried);
  ASSERT_TRUE(hurried_id.ok());
  std::vector<client::JobEvent> seen;
  expect_error(wait_result(*client_, *hurried_id, 60s, &seen), "deadline_exceeded", "deadline_ms");
  bool long_done = false;
  for (const auto& e : seen) long_done = long_done || (e.id == *long_id && e.result);
  if (!long_done) {
    auto r = wait_result(*client_, *long_id);
    ASSERT_TRUE(r.has_value());
    EXPECT_EQ(r->status, "ok");
  }
  expect_ok(*client_);
}

TEST(E2eQueue, QueueFullThenJobsFlowOnceAWorkerComes) {
  ECGQ_REQUIRE_BINARIES("ecgq-broker", "ecgq-worker");
  Broker broker({"--max-queue-per-client", "2"});
  ASSERT_TRUE(broker.ready) << broker.diagnostics();
  auto c = connect(broker.endpoint);
  // No worker yet: two jobs wait in the queue, the third is refused at once.
  auto a = c->submit(ecg_job());
  auto b = c->submit(ecg_job());
  auto full = c->submit(ecg_job());
  ASSERT_TRUE(a.ok() && b.ok() && full.ok());
  auto r = wait_result(*c, *full, 10s);
  expect_error(r, "queue_full");
  ASSERT_TRUE(r.has_value() && r->error.has_value());
  EXPECT_TRUE(r->error->retry_after_ms.has_value());
  EXPECT_GE(r->error->retry_after_ms.value_or(0), 100);

  auto w = start_worker(broker.endpoint, "late");
  for (const auto& id : {*a, *b}) {
    auto done = wait_result(*c, id);
    ASSERT_TRUE(done.has_value());
    EXPECT_EQ(done->status, "ok") << (done->error ? done->error->message : "");
  }
  expect_ok(*c);
}

TEST(E2eQueue, DeadlineExceededWithNoWorker) {
  ECGQ_REQUIRE_BINARIES("ecgq-broker", "ecgq-worker");
  Broker broker;
  ASSERT_TRUE(broker.ready) << broker.diagnostics();
  auto c = connect(broker.endpoint);
  schema::Job job = ecg_job();
  job.deadline_ms = 200;
  expect_error(run_job(*c, job, 10s), "deadline_exceeded", "deadline_ms");
  auto w = start_worker(broker.endpoint, "w");
  expect_ok(*c);
}

}  // namespace
}  // namespace ecgq::test

namespace ecgq::test {
namespace {

int64_t st_counter(client::Client& c, const char* name) {
  return json_int(status_json(c), {"counters", name}, 0);
}

TEST(E2eQueue, PerJobTimeoutGivesALocalErrorAndTheClientCarriesOn) {
  ECGQ_REQUIRE_BINARIES("ecgq-broker", "ecgq-worker");
  Broker broker;  // no worker yet: the job cannot finish in time
  ASSERT_TRUE(broker.ready) << broker.diagnostics();
  client::ClientOptions o;
  o.broker = broker.endpoint;
  o.timeout = 30s;
  o.job_timeout = 300ms;
  client::Client c(o);
  auto r = run_job(c, ecg_job(), 10s);
  expect_error(r, "timeout");
  EXPECT_EQ(c.outstanding(), 0u);
  // The timed-out job still runs once a worker comes; its late FINAL is dropped, not delivered.
  auto w = start_worker(broker.endpoint, "w");
  auto observer = connect(broker.endpoint);
  ASSERT_TRUE(wait_until(
      [&] {
        const client::Json st = status_json(*observer);
        if (json_int(st, {"services", "ecg-fm", "in_flight"}) < 0) return false;
        for (const auto& wk :
             st.at("services").at("ecg-fm").value("workers", client::Json::array())) {
          if (json_int(wk, {"jobs_done"}) >= 1) return true;
        }
        return false;
      },
      60s));
  ASSERT_TRUE(wait_until([&] { return st_counter(*observer, "completed") >= 1; }, 10s));
  auto late = c.poll(200ms);
  ASSERT_TRUE(late.ok()) << late.status().to_string();
  EXPECT_FALSE(late->has_value()) << "late event for " << (*late)->id;
}

}  // namespace
}  // namespace ecgq::test
