// ecgq-broker dispatch rules: bounds, deadlines, waiting for workers, re-dispatch after lost
// workers, duplicates, fairness, capacity, waking and shutdown.
#include <gtest/gtest.h>

#include <csignal>

#include "protocol/extensions.hpp"
#include "tests/test_broker_peers.hpp"

namespace ecgq::test {
namespace {

TEST(BrokerDispatch, FullQueueAnswersQueueFullAtOnceThenServesNormally) {
  BrokerProcess broker({"--max-queue", "2"});
  ASSERT_TRUE(broker.ready) << broker.proc->stderr_text();
  RawClient client(broker.endpoint);
  client.request("ecg-fm", {job_body("q1")});
  client.request("ecg-fm", {job_body("q2")});
  client.request("ecg-fm", {job_body("q3")});
  std::vector<Frames> partials;
  auto m = client.final(5s, &partials);
  ASSERT_TRUE(m);
  auto r = result_of(*m);
  EXPECT_EQ(r.id, "q3");
  ASSERT_TRUE(r.error);
  EXPECT_EQ(r.error->code, "queue_full");
  ASSERT_TRUE(r.error->retry_after_ms);
  EXPECT_GT(*r.error->retry_after_ms, 0);
  EXPECT_EQ(partials.size(), 2u);  // q1 and q2 were told they are queued

  RawWorker worker(broker.endpoint, "ecg-fm");
  worker.auto_final(true);
  EXPECT_EQ(result_of(*client.final()).id, "q1");
  EXPECT_EQ(result_of(*client.final()).id, "q2");
  client.request("ecg-fm", {job_body("q4")});
  m = client.final();
  ASSERT_TRUE(m);
  EXPECT_EQ(code_of(m), "");
  EXPECT_EQ(result_of(*m).id, "q4");
}

TEST(BrokerDispatch, PerClientBoundLeavesOtherClientsAlone) {
  BrokerProcess broker({"--max-queue-per-client", "1"});
  ASSERT_TRUE(broker.ready) << broker.proc->stderr_text();
  RawClient a(broker.endpoint), b(broker.endpoint);
  a.request("ecg-fm", {job_body("a1")});
  a.request("ecg-fm", {job_body("a2")});
  EXPECT_EQ(code_of(a.final()), "queue_full");
  b.request("ecg-fm", {job_body("b1")});
  auto p = b.recv();
  ASSERT_TRUE(p);
  EXPECT_EQ((*p)[1], byte(0x02));  // queued, not refused
}

TEST(BrokerDispatch, JobExpiresInQueueWithDeadlineExceeded) {
  BrokerProcess broker;
  ASSERT_TRUE(broker.ready) << broker.proc->stderr_text();
  RawClient client(broker.endpoint);
  client.request("ecg-fm", {job_body("d1", 150)});
  auto m = client.final();
  ASSERT_TRUE(m);
  EXPECT_EQ(code_of(m), "deadline_exceeded");
  EXPECT_EQ(result_of(*m).id, "d1");
}

TEST(BrokerDispatch, NoWorkerAfterServiceWait) {
  BrokerProcess broker({"--service-wait", "200ms"});
  ASSERT_TRUE(broker.ready) << broker.proc->stderr_text();
  RawClient client(broker.endpoint);
  client.request("ecg-fm", {job_body("n1")});
  EXPECT_EQ(code_of(client.final()), "no_worker");
  client.request("plain", {"x"});  // generic services get msgpack error results too
  EXPECT_EQ(code_of(client.final()), "no_worker");
}

TEST(BrokerDispatch, JobWaitsForWorkerThatRegistersLater) {
  BrokerProcess broker;
  ASSERT_TRUE(broker.ready) << broker.proc->stderr_text();
  RawClient client(broker.endpoint);
  client.request("ecg-fm", {job_body("late")});
  auto p = client.recv();
  ASSERT_TRUE(p);
  EXPECT_EQ(schema::decode_progress((*p)[3])->event, "queued");
  RawWorker worker(broker.endpoint, "ecg-fm");
  auto req = worker.next();
  ASSERT_TRUE(req);
  auto job = job_of(*req);
  EXPECT_EQ(job.id, "late");
  ASSERT_TRUE(job.dispatch);
  EXPECT_EQ(job.dispatch->attempt, 1);
  worker.final((*req)[2], {ok_result("late")});
  auto m = client.final();
  ASSERT_TRUE(m);
  EXPECT_EQ(code_of(m), "");
  EXPECT_EQ(result_of(*m).id, "late");
}

TEST(BrokerDispatch, SilentWorkersJobGoesToAnotherWorkerWithAttempt2) {
  BrokerProcess broker;
  ASSERT_TRUE(broker.ready) << broker.proc->stderr_text();
  RawClient client(broker.endpoint);
  auto w1 = std::make_unique<RawWorker>(broker.endpoint, "ecg-fm");
  ASSERT_TRUE(wait_until([&] { return client.mmi("mmi.service", "ecg-fm") == "200"; }, 5s));
  client.request("ecg-fm", {job_body("r1")});
  auto req = w1->next();
  ASSERT_TRUE(req);
  const std::string first_token = (*req)[2];
  w1->go_silent();
  RawWorker w2(broker.endpoint, "ecg-fm");
  auto again = w2.next(10s);
  ASSERT_TRUE(again);
  auto job = job_of(*again);
  EXPECT_EQ(job.id, "r1");
  ASSERT_TRUE(job.dispatch);
  EXPECT_EQ(job.dispatch->attempt, 2);
  w2.final((*again)[2], {ok_result("r1")});
  auto m = client.final();
  ASSERT_TRUE(m);
  EXPECT_EQ(result_of(*m).id, "r1");
  auto status = client.mmi("mmi.status", "");
  ASSERT_TRUE(status);
  EXPECT_EQ(mp_int(*status, {"counters", "redispatched"}), 1);
}

TEST(BrokerDispatch, MaxAttemptsEndsInWorkerLost) {
  BrokerProcess broker({"--max-attempts", "2"});
  ASSERT_TRUE(broker.ready) << broker.proc->stderr_text();
  RawClient client(broker.endpoint);
  RawWorker w1(broker.endpoint, "ecg-fm");
  ASSERT_TRUE(wait_until([&] { return client.mmi("mmi.service", "ecg-fm") == "200"; }, 5s));
  client.request("ecg-fm", {job_body("m1")});
  ASSERT_TRUE(w1.next());
  w1.go_silent();  // attempt 1 lost by heartbeat expiry
  RawWorker w2(broker.endpoint, "ecg-fm");
  auto req = w2.next(10s);
  ASSERT_TRUE(req);
  EXPECT_EQ(job_of(*req).dispatch->attempt, 2);
  w2.send({kW, byte(0x06)});  // attempt 2 lost by DISCONNECT
  auto m = client.final(10s);
  ASSERT_TRUE(m);
  auto r = result_of(*m);
  EXPECT_EQ(r.id, "m1");
  ASSERT_TRUE(r.error);
  EXPECT_EQ(r.error->code, "worker_lost");
  EXPECT_EQ(r.attempts, 2);
}

TEST(BrokerDispatch, DuplicateAndUnknownFinalsAreDropped) {
  BrokerProcess broker;
  ASSERT_TRUE(broker.ready) << broker.proc->stderr_text();
  RawClient client(broker.endpoint);
  RawWorker worker(broker.endpoint, "ecg-fm");
  ASSERT_TRUE(wait_until([&] { return client.mmi("mmi.service", "ecg-fm") == "200"; }, 5s));
  client.request("ecg-fm", {job_body("x1")});
  auto req = worker.next();
  ASSERT_TRUE(req);
  worker.final((*req)[2], {ok_result("x1")});
  worker.final((*req)[2], {ok_result("x1-duplicate")});
  worker.final(std::string(8, '\x7f'), {ok_result("never-dispatched")});
  client.request("ecg-fm", {job_body("x2")});
  auto req2 = worker.next();
  ASSERT_TRUE(req2);
  worker.final((*req2)[2], {ok_result("x2")});
  // Exactly one FINAL per job, in order: the duplicates never reach the client.
  EXPECT_EQ(result_of(*client.final()).id, "x1");
  EXPECT_EQ(result_of(*client.final()).id, "x2");
  auto status = client.mmi("mmi.status", "");
  ASSERT_TRUE(status);
  EXPECT_EQ(mp_int(*status, {"counters", "dropped_duplicates"}), 2);
  EXPECT_EQ(mp_int(*status, {"counters", "completed"}), 2);
}

TEST(BrokerDispatch, LateFinalFromALostWorkerIsNotDelivered) {
  BrokerProcess broker;
  ASSERT_TRUE(broker.ready) << broker.proc->stderr_text();
  RawClient client(broker.endpoint);
  RawWorker w1(broker.endpoint, "ecg-fm");
  ASSERT_TRUE(wait_until([&] { return client.mmi("mmi.service", "ecg-fm") == "200"; }, 5s));
  client.request("ecg-fm", {job_body("l1")});
  auto req = w1.next();
  ASSERT_TRUE(req);
  w1.send({kW, byte(0x06)});  // lost: the job goes back to the queue
  RawWorker w2(broker.endpoint, "ecg-fm");
  auto again = w2.next();
  ASSERT_TRUE(again);
  // w1's late FINAL (it is no longer registered) is answered with DISCONNECT, not forwarded.
  w1.final((*req)[2], {ok_result("stale")});
  auto d = w1.next();
  ASSERT_TRUE(d);
  EXPECT_EQ(*d, (Frames{kW, byte(0x06)}));
  w2.final((*again)[2], {ok_result("l1")});
  EXPECT_EQ(result_of(*client.final()).id, "l1");
}

TEST(BrokerDispatch, RoundRobinAcrossClientsServesTheSmallProducerEarly) {
  BrokerProcess broker;
  ASSERT_TRUE(broker.ready) << broker.proc->stderr_text();
  RawClient a(broker.endpoint), b(broker.endpoint);
  for (int i = 0; i < 200; ++i) a.request("ecg-fm", {job_body("a" + std::to_string(i))});
  for (int i = 0; i < 200; ++i) ASSERT_TRUE(a.recv());  // all 200 queued
  b.request("ecg-fm", {job_body("b0")});
  auto p = b.recv();
  ASSERT_TRUE(p);
  auto progress = schema::decode_progress((*p)[3]);
  ASSERT_TRUE(progress.ok());
  EXPECT_EQ(progress->position, 1);  // behind a0 only
  RawWorker worker(broker.endpoint, "ecg-fm");
  worker.auto_final(true);
  ASSERT_TRUE(b.final(10s));
  auto reqs = worker.requests();
  size_t index = reqs.size();
  for (size_t i = 0; i < reqs.size(); ++i)
    if (job_of(reqs[i]).id == "b0") index = i;
  EXPECT_LT(index, 3u);
}

TEST(BrokerDispatch, CapacityTwoWorkerGetsTwoJobsAtOnce) {
  BrokerProcess broker;
  ASSERT_TRUE(broker.ready) << broker.proc->stderr_text();
  RawWorker worker(broker.endpoint, "ecg-fm", mp_map({{"v", mp(1)}, {"capacity", mp(2)}}));
  RawClient client(broker.endpoint);
  ASSERT_TRUE(wait_until([&] { return client.mmi("mmi.service", "ecg-fm") == "200"; }, 5s));
  for (const char* id : {"c1", "c2", "c3"}) client.request("ecg-fm", {job_body(id)});
  auto r1 = worker.next();
  auto r2 = worker.next();
  ASSERT_TRUE(r1 && r2);
  EXPECT_NE((*r1)[2], (*r2)[2]);
  EXPECT_FALSE(worker.next(300ms)) << "a third job went past capacity 2";
  worker.final((*r1)[2], {ok_result("c1")});
  auto r3 = worker.next();
  ASSERT_TRUE(r3);
  EXPECT_EQ(job_of(*r3).id, "c3");
}

TEST(BrokerDispatch, AsleepWorkerIsWokenAndKeepWarmIsSent) {
  BrokerProcess broker({"--keep-warm", "1"});
  ASSERT_TRUE(broker.ready) << broker.proc->stderr_text();
  RawWorker worker(broker.endpoint, "ecg-fm",
                   mp_map({{"v", mp(1)},
                           {"state", mp(std::string("asleep"))},
                           {"worker_id", mp(std::string("sleepy"))}}));
  RawClient client(broker.endpoint);
  ASSERT_TRUE(wait_until([&] { return client.mmi("mmi.service", "ecg-fm") == "200"; }, 5s));
  client.request("ecg-fm", {job_body("z1")});
  auto p = client.recv();
  ASSERT_TRUE(p);
  auto progress = schema::decode_progress((*p)[3]);
  ASSERT_TRUE(progress.ok());
  EXPECT_EQ(progress->event, "waking");
  EXPECT_EQ(progress->worker_id, "sleepy");
  ASSERT_TRUE(worker.next());
  // An extension-aware worker gets {keep_warm} in heartbeats.
  ASSERT_TRUE(wait_until([&] { return !worker.heartbeats().empty(); }, 5s));
  auto hb = worker.heartbeats().back();
  ASSERT_EQ(hb.size(), 3u);
  auto oh = msgpack::unpack(hb[2].data(), hb[2].size());
  const auto hb_map = oh.get().as<std::map<std::string, bool>>();
  EXPECT_TRUE(hb_map.at("keep_warm"));
}

TEST(BrokerDispatch, SigtermAnswersQueuedAndInFlightJobsAndExitsZero) {
  BrokerProcess broker({"--shutdown-grace", "300ms"});
  ASSERT_TRUE(broker.ready) << broker.proc->stderr_text();
  RawWorker worker(broker.endpoint, "ecg-fm");
  RawClient client(broker.endpoint);
  ASSERT_TRUE(wait_until([&] { return client.mmi("mmi.service", "ecg-fm") == "200"; }, 5s));
  for (const char* id : {"s1", "s2", "s3"}) client.request("ecg-fm", {job_body(id)});
  ASSERT_TRUE(worker.next());  // s1 in flight, never answered
  ASSERT_TRUE(client.recv());  // s2 queued
  ASSERT_TRUE(client.recv());  // s3 queued
  broker.proc->signal(SIGTERM);
  std::map<std::string, std::string> codes;
  for (int i = 0; i < 3; ++i) {
    auto m = client.final();
    ASSERT_TRUE(m);
    auto r = result_of(*m);
    codes[r.id] = r.error ? r.error->code : "";
  }
  EXPECT_EQ(codes, (std::map<std::string, std::string>{
                       {"s1", "shutting_down"}, {"s2", "shutting_down"}, {"s3", "shutting_down"}}));
  auto d = worker.next();
  ASSERT_TRUE(d);
  EXPECT_EQ(*d, (Frames{kW, byte(0x06)}));
  EXPECT_EQ(broker.proc->wait(10s), 0) << broker.proc->stderr_text();
}

TEST(BrokerDispatch, SigtermLetsInFlightJobsFinishWithinGrace) {
  BrokerProcess broker({"--shutdown-grace", "10s"});
  ASSERT_TRUE(broker.ready) << broker.proc->stderr_text();
  RawWorker worker(broker.endpoint, "ecg-fm");
  RawClient client(broker.endpoint);
  ASSERT_TRUE(wait_until([&] { return client.mmi("mmi.service", "ecg-fm") == "200"; }, 5s));
  client.request("ecg-fm", {job_body("g1")});
  auto req = worker.next();
  ASSERT_TRUE(req);
  broker.proc->signal(SIGTERM);
  // New work is refused while draining...
  ASSERT_TRUE(wait_until(
      [&] {
        client.request("ecg-fm", {job_body("g2")});
        auto m = client.final();
        return m && code_of(m) == "shutting_down";
      },
      5s));
  // ...but the running job still delivers its result.
  worker.final((*req)[2], {ok_result("g1")});
  auto m = client.final();
  ASSERT_TRUE(m);
  EXPECT_EQ(result_of(*m).id, "g1");
  EXPECT_EQ(code_of(m), "");
  EXPECT_EQ(broker.proc->wait(10s), 0);
}

}  // namespace
}  // namespace ecgq::test

namespace ecgq::test {
namespace {

TEST(BrokerDispatch, ReconnectedWorkerRetiresItsOldRegistrationAtOnce) {
  // A minute of heartbeat liveness: the old registration cannot simply expire during the test.
  BrokerProcess broker({}, "600");
  ASSERT_TRUE(broker.ready) << broker.proc->stderr_text();
  const std::string meta = mp_map({{"v", mp(1)},
                                   {"capacity", mp(1)},
                                   {"worker_id", mp(std::string("w-same"))},
                                   {"pid", mp(4242)},
                                   {"host", mp(std::string("h1"))}});
  RawClient client(broker.endpoint);
  auto old_connection = std::make_unique<RawWorker>(broker.endpoint, "ecg-fm", meta);
  ASSERT_TRUE(wait_until([&] { return client.mmi("mmi.service", "ecg-fm") == "200"; }, 5s));
  client.request("ecg-fm", {job_body("j1")});
  auto first = old_connection->next();
  ASSERT_TRUE(first);
  // The worker lost the broker and comes back on a new socket (new routing id), same process.
  old_connection->go_silent();
  RawWorker new_connection(broker.endpoint, "ecg-fm", meta);
  auto again = new_connection.next();
  ASSERT_TRUE(again) << "the job stayed with the old registration";
  EXPECT_EQ(job_of(*again).id, "j1");
  EXPECT_EQ(job_of(*again).dispatch->attempt, 2);
  new_connection.final((*again)[2], {ok_result("j1")});
  EXPECT_EQ(result_of(*client.final()).id, "j1");
}

TEST(BrokerDispatch, SecondReadyRequeuesWhatTheWorkerHadInFlight) {
  BrokerProcess broker;
  ASSERT_TRUE(broker.ready) << broker.proc->stderr_text();
  zmq::socket_t w(ctx(), zmq::socket_type::dealer);
  w.set(zmq::sockopt::linger, 0);
  w.set(zmq::sockopt::routing_id, "restarting-worker");
  w.connect(broker.endpoint);
  ASSERT_TRUE(send_frames(w, {kW, byte(0x01), "ecg-fm"}));
  RawClient client(broker.endpoint);
  client.request("ecg-fm", {job_body("rr")});
  auto next_request = [&]() -> std::optional<Frames> {
    while (auto m = recv_frames(w, 5s))
      if (m->size() >= 2 && (*m)[1] == byte(0x02)) return m;  // skip heartbeats
    return std::nullopt;
  };
  auto first = next_request();
  ASSERT_TRUE(first);
  EXPECT_EQ(job_of(*first).dispatch->attempt, 1);
  // The same routing id says READY again: the worker restarted and lost the job.
  ASSERT_TRUE(send_frames(w, {kW, byte(0x01), "ecg-fm"}));
  auto second = next_request();
  ASSERT_TRUE(second);
  EXPECT_EQ(job_of(*second).id, "rr");
  EXPECT_EQ(job_of(*second).dispatch->attempt, 2);
  ASSERT_TRUE(send_frames(w, {kW, byte(0x04), (*first)[2], "", ok_result("stale")}));
  ASSERT_TRUE(send_frames(w, {kW, byte(0x04), (*second)[2], "", ok_result("rr")}));
  EXPECT_EQ(result_of(*client.final()).id, "rr");
}

}  // namespace
}  // namespace ecgq::test

namespace ecgq::test {
namespace {

TEST(BrokerDispatch, NothingFollowsABrokerFinal) {
  BrokerProcess broker;
  ASSERT_TRUE(broker.ready) << broker.proc->stderr_text();
  RawWorker worker(broker.endpoint, "ecg-fm");  // answers only when told
  RawClient client(broker.endpoint);
  ASSERT_TRUE(wait_until([&] { return client.mmi("mmi.service", "ecg-fm") == "200"; }, 5s));
  // The deadline passes while the job runs: the broker answers, the worker's FINAL comes late.
  client.request("ecg-fm", {job_body("late", 50)});
  auto req = worker.next();
  ASSERT_TRUE(req && req->size() >= 3 && (*req)[1] == byte(0x02));
  auto first = client.final();
  ASSERT_TRUE(first);
  EXPECT_EQ(code_of(first), "deadline_exceeded");
  schema::Result late;
  late.id = "late";
  worker.final((*req)[2], {schema::encode_result(late)});
  ASSERT_TRUE(wait_until(
      [&] {
        auto body = client.mmi("mmi.status", "");
        auto s = body ? ext::decode_status(*body) : Expected<ext::BrokerStatus>(Status());
        return s.ok() && s->counters.dropped_duplicates >= 1;
      },
      5s));
  worker.auto_final(true);
  client.request("ecg-fm", {job_body("next")});
  auto second = client.recv();  // nothing for "late" after its FINAL
  ASSERT_TRUE(second);
  EXPECT_EQ((*second)[1], byte(0x03));
  EXPECT_EQ(result_of(*second).id, "next");
}

}  // namespace

// A worker whose connection vanished without DISCONNECT is found unreachable when the broker
// sends it a job: the broker must drop it, keep the job and serve it with the next worker.
TEST(BrokerDispatch, UnreachableWorkerAtDispatchIsDroppedAndTheJobKept) {
  BrokerProcess broker;
  ASSERT_TRUE(broker.ready) << broker.proc->stderr_text();
  RawClient client(broker.endpoint);
  for (int round = 0; round < 3; ++round) {
    auto gone = std::make_unique<RawWorker>(broker.endpoint, "ecg-fm");
    ASSERT_TRUE(wait_until([&] { return client.mmi("mmi.service", "ecg-fm") == "200"; }, 5s));
    gone.reset();  // closes the socket with linger 0: no DISCONNECT reaches the broker
    const std::string id = "u" + std::to_string(round);
    client.request("ecg-fm", {job_body(id)});
    RawWorker next(broker.endpoint, "ecg-fm");
    auto req = next.next(15s);
    ASSERT_TRUE(req) << broker.proc->stderr_text();
    EXPECT_EQ(job_of(*req).id, id);
    next.final((*req)[2], {ok_result(id)});
    auto m = client.final(15s);
    ASSERT_TRUE(m);
    EXPECT_EQ(result_of(*m).id, id);
    ASSERT_TRUE(broker.proc->running()) << broker.proc->stderr_text();
  }
}

}  // namespace ecgq::test
