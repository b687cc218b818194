// ecgq-broker against strict RFC 18 / RFC 8 peers: generic services, MMI, malformed input.
#include <gtest/gtest.h>

#include "tests/test_broker_peers.hpp"

namespace ecgq::test {
namespace {

TEST(BrokerRfc, StrictClientAndWorkerInteroperateOnGenericService) {
  BrokerProcess broker;
  ASSERT_TRUE(broker.ready) << broker.proc->stderr_text();
  RawWorker worker(broker.endpoint, "echo");
  RawClient client(broker.endpoint);
  ASSERT_TRUE(wait_until([&] { return client.mmi("mmi.service", "echo") == "200"; }, 5s));

  const std::string binary("\x00\x01\xff", 3);
  client.request("echo", {"hello", binary});
  auto req = worker.next();
  ASSERT_TRUE(req);
  // REQUEST: MDPW02, 0x02, client address, empty, body frames unchanged.
  ASSERT_EQ(req->size(), 6u);
  EXPECT_EQ((*req)[0], kW);
  EXPECT_EQ((*req)[1], byte(0x02));
  EXPECT_FALSE((*req)[2].empty());
  EXPECT_EQ((*req)[3], "");
  EXPECT_EQ((*req)[4], "hello");
  EXPECT_EQ((*req)[5], binary);

  const std::string address = (*req)[2];
  worker.partial(address, {"p1"});
  worker.partial(address, {"p2a", "p2b"});
  worker.final(address, {"done"});
  for (const Frames& expected :
       {Frames{kC, byte(0x02), "echo", "p1"}, Frames{kC, byte(0x02), "echo", "p2a", "p2b"},
        Frames{kC, byte(0x03), "echo", "done"}}) {
    auto m = client.recv();
    ASSERT_TRUE(m);
    EXPECT_EQ(*m, expected);
  }
  // A strict worker gets strict heartbeats: exactly two frames, no extension frame.
  ASSERT_TRUE(wait_until([&] { return !worker.heartbeats().empty(); }, 5s));
  EXPECT_EQ(worker.heartbeats().front(), (Frames{kW, byte(0x05)}));
}

TEST(BrokerRfc, MmiServiceAnswers200And404And501) {
  BrokerProcess broker;
  ASSERT_TRUE(broker.ready) << broker.proc->stderr_text();
  RawClient client(broker.endpoint);
  EXPECT_EQ(client.mmi("mmi.service", "echo"), "404");
  {
    RawWorker worker(broker.endpoint, "echo");
    EXPECT_TRUE(wait_until([&] { return client.mmi("mmi.service", "echo") == "200"; }, 5s));
    worker.send({kW, byte(0x06)});  // DISCONNECT: the service has no live worker left
    EXPECT_TRUE(wait_until([&] { return client.mmi("mmi.service", "echo") == "404"; }, 5s));
  }
  EXPECT_EQ(client.mmi("mmi.nonsense", ""), "501");
  // The reply's service frame is the mmi service itself.
  client.request("mmi.nonsense", {});
  auto m = client.final();
  ASSERT_TRUE(m);
  EXPECT_EQ(*m, (Frames{kC, byte(0x03), "mmi.nonsense", "501"}));
}

TEST(BrokerRfc, WorkerRegisteringMmiServiceIsDisconnected) {
  BrokerProcess broker;
  ASSERT_TRUE(broker.ready) << broker.proc->stderr_text();
  RawWorker worker(broker.endpoint, "mmi.service");
  auto m = worker.next();
  ASSERT_TRUE(m);
  EXPECT_EQ(*m, (Frames{kW, byte(0x06)}));
  RawClient client(broker.endpoint);
  EXPECT_EQ(client.mmi("mmi.service", "mmi.service"), "404");
}

TEST(BrokerRfc, UnregisteredWorkerTrafficGetsDisconnect) {
  BrokerProcess broker;
  ASSERT_TRUE(broker.ready) << broker.proc->stderr_text();
  zmq::socket_t s(ctx(), zmq::socket_type::dealer);
  s.set(zmq::sockopt::linger, 0);
  s.connect(broker.endpoint);
  ASSERT_TRUE(send_frames(s, {kW, byte(0x05)}));  // HEARTBEAT before READY
  auto m = recv_frames(s, 5s);
  ASSERT_TRUE(m);
  EXPECT_EQ(*m, (Frames{kW, byte(0x06)}));
  ASSERT_TRUE(send_frames(s, {kW, byte(0x04), "12345678", "", "late"}));  // FINAL before READY
  m = recv_frames(s, 5s);
  ASSERT_TRUE(m);
  EXPECT_EQ(*m, (Frames{kW, byte(0x06)}));
}

TEST(BrokerRfc, MalformedJobsGetTheirErrorAndTheBrokerKeepsServing) {
  BrokerProcess broker;
  ASSERT_TRUE(broker.ready) << broker.proc->stderr_text();
  RawWorker worker(broker.endpoint, "ecg-fm");
  worker.auto_final(true);
  RawClient client(broker.endpoint);
  ASSERT_TRUE(wait_until([&] { return client.mmi("mmi.service", "ecg-fm") == "200"; }, 5s));

  client.request("ecg-fm", {"\xc1 not msgpack"});
  auto m = client.final();
  ASSERT_TRUE(m);
  EXPECT_EQ((*m)[2], "ecg-fm");
  EXPECT_EQ(code_of(m), "bad_request");

  client.request("ecg-fm", {mp(std::vector<int>{1, 2})});
  EXPECT_EQ(code_of(client.final()), "bad_request");

  client.request("ecg-fm", {job_body("a"), job_body("b")});
  EXPECT_EQ(code_of(client.final()), "bad_request");

  // Two leads named for one row of samples... and data of the wrong size.
  const std::string bad_data = mp_map({{"v", mp(1)},
                                       {"id", mp(std::string("bad-1"))},
                                       {"ecg", mp_map({{"dtype", mp(std::string("f32"))},
                                                       {"shape", mp(std::vector<int>{1, 4})},
                                                       {"data",
                                                        [] {
                                                          msgpack::sbuffer b;
                                                          msgpack::packer<msgpack::sbuffer> pk(b);
                                                          pk.pack_bin(3);
                                                          pk.pack_bin_body("abc", 3);
                                                          return std::string(b.data(), b.size());
                                                        }()}})},
                                       {"fs", mp(500)},
                                       {"leads", mp(std::vector<std::string>{"I"})}});
  client.request("ecg-fm", {bad_data});
  m = client.final();
  ASSERT_TRUE(m);
  auto r = result_of(*m);
  ASSERT_TRUE(r.error);
  EXPECT_EQ(r.error->code, "bad_shape");
  EXPECT_EQ(r.error->field, "ecg.data");
  EXPECT_EQ(r.id, "bad-1");  // named, so a pipelining client can match it

  const std::string bad_dtype = mp_map({{"v", mp(1)},
                                        {"ecg", mp_map({{"dtype", mp(std::string("u8"))},
                                                        {"shape", mp(std::vector<int>{1, 4})},
                                                        {"data", mp(std::string("abcd"))}})},
                                        {"fs", mp(500)},
                                        {"leads", mp(std::vector<std::string>{"I"})}});
  client.request("ecg-fm", {bad_dtype});
  EXPECT_EQ(code_of(client.final()), "unsupported_dtype");

  // Clients may only send REQUEST.
  client.raw({kC, byte(0x03), "ecg-fm", "x"});
  EXPECT_EQ(code_of(client.final()), "bad_frame");
  client.raw({kC, byte(0x01), ""});
  EXPECT_EQ(code_of(client.final()), "bad_frame");
  // Garbage without a service frame is dropped; the next valid job still works.
  client.raw({kC});
  client.request("ecg-fm", {job_body("good")});
  m = client.final();
  ASSERT_TRUE(m);
  EXPECT_EQ((*m)[2], "ecg-fm");
  EXPECT_EQ(result_of(*m).id, "good");
  const auto requests = worker.requests();
  ASSERT_EQ(requests.size(), 1u);  // no malformed job reached the worker
  // The job the worker got carries the dispatch info.
  auto j = schema::decode_job(requests[0].at(4));
  ASSERT_TRUE(j.ok()) << j.status().to_string();
  EXPECT_EQ(j->id, "good");
  ASSERT_TRUE(j->dispatch);
  EXPECT_EQ(j->dispatch->attempt, 1);
}

TEST(BrokerRfc, MissingIdIsAssignedAndProgressNamesIt) {
  BrokerProcess broker;
  ASSERT_TRUE(broker.ready) << broker.proc->stderr_text();
  RawClient client(broker.endpoint);
  client.request("ecg-fm", {job_body("")});
  auto partial = client.recv();  // no worker: queued
  ASSERT_TRUE(partial);
  EXPECT_EQ((*partial)[1], byte(0x02));
  auto p = schema::decode_progress(partial->at(3));
  ASSERT_TRUE(p.ok()) << p.status().to_string();
  EXPECT_EQ(p->event, "queued");
  EXPECT_EQ(p->position, 0);
  EXPECT_FALSE(p->id.empty());
  RawWorker worker(broker.endpoint, "ecg-fm");
  auto req = worker.next();
  ASSERT_TRUE(req);
  EXPECT_EQ(job_of(*req).id, p->id);
}

TEST(BrokerRfc, OversizedBodyGetsMessageTooLarge) {
  BrokerProcess broker({"--max-message-bytes", "64KiB"});
  ASSERT_TRUE(broker.ready) << broker.proc->stderr_text();
  RawClient client(broker.endpoint);
  // Each frame is under the transport limit, the body as a whole is not.
  client.request("echo", {std::string(40000, 'a'), std::string(40000, 'b')});
  EXPECT_EQ(code_of(client.final()), "message_too_large");
  EXPECT_EQ(client.mmi("mmi.service", "echo"), "404");  // still serving
}

TEST(BrokerRfc, StatusReportsWorkersAndCounters) {
  BrokerProcess broker;
  ASSERT_TRUE(broker.ready) << broker.proc->stderr_text();
  const std::string meta = mp_map(
      {{"v", mp(1)},
       {"capacity", mp(2)},
       {"state", mp(std::string("warm"))},
       {"worker_id", mp(std::string("w-1"))},
       {"model", mp_map({{"kind", mp(std::string("ecgfm"))}, {"name", mp(std::string("tiny"))}})},
       {"pid", mp(1234)},
       {"host", mp(std::string("h"))}});
  RawWorker worker(broker.endpoint, "ecg-fm", meta);
  worker.auto_final(true);
  RawClient client(broker.endpoint);
  ASSERT_TRUE(wait_until([&] { return client.mmi("mmi.service", "ecg-fm") == "200"; }, 5s));
  client.request("ecg-fm", {job_body("s1")});
  ASSERT_TRUE(client.final());
  worker.send(
      {kW, byte(0x05), mp_map({{"state", mp(std::string("warm"))}, {"rss_bytes", mp(4096)}})});
  std::string status;
  ASSERT_TRUE(wait_until(
      [&] {
        status = client.mmi("mmi.status", "").value_or("");
        auto oh = msgpack::unpack(status.data(), status.size());
        // workers is an array; check its first entry through the msgpack object.
        const auto& root = oh.get();
        for (uint32_t i = 0; i < root.via.map.size; ++i) {
          if (root.via.map.ptr[i].key.as<std::string>() != "services") continue;
          auto svc = root.via.map.ptr[i].val.as<std::map<std::string, msgpack::object>>();
          auto w = svc.at("ecg-fm").as<std::map<std::string, msgpack::object>>().at("workers");
          auto first = w.via.array.ptr[0].as<std::map<std::string, msgpack::object>>();
          return first.at("id").as<std::string>() == "w-1" && first.at("capacity").as<int>() == 2 &&
                 first.at("rss_bytes").as<int>() == 4096 &&
                 first.at("state").as<std::string>() == "warm";
        }
        return false;
      },
      5s));
  EXPECT_EQ(mp_int(status, {"counters", "completed"}), 1);
  EXPECT_EQ(mp_int(status, {"counters", "received"}), 1);
  EXPECT_EQ(mp_int(status, {"services", "ecg-fm", "queued"}), 0);
}

TEST(BrokerRfc, CancelRemovesTheClientsQueuedJobs) {
  BrokerProcess broker;
  ASSERT_TRUE(broker.ready) << broker.proc->stderr_text();
  RawClient a(broker.endpoint), b(broker.endpoint);
  for (const char* id : {"a1", "a2", "a3"}) a.request("ecg-fm", {job_body(id)});
  b.request("ecg-fm", {job_body("b1")});
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(a.recv());  // queued PARTIALs
  ASSERT_TRUE(b.recv());
  a.request("mmi.cancel", {mp_map({{"ids", mp(std::vector<std::string>{"a2", "b1", "zz"})}})});
  auto first = a.final();  // cancelled job answered before the mmi.cancel reply
  ASSERT_TRUE(first);
  EXPECT_EQ(code_of(first), "cancelled");
  EXPECT_EQ(result_of(*first).id, "a2");
  auto reply = a.final();
  ASSERT_TRUE(reply);
  EXPECT_EQ((*reply)[2], "mmi.cancel");
  EXPECT_EQ(mp_int((*reply)[3], {"cancelled"}), 1);
  EXPECT_EQ(mp_int((*reply)[3], {"unknown"}), 2);  // b1 belongs to another client
  a.request("mmi.cancel", {mp_map({{"all", mp(true)}})});
  EXPECT_EQ(code_of(a.final()), "cancelled");
  EXPECT_EQ(code_of(a.final()), "cancelled");
  reply = a.final();
  ASSERT_TRUE(reply);
  EXPECT_EQ(mp_int((*reply)[3], {"cancelled"}), 2);
  a.request("mmi.cancel", {"junk"});
  EXPECT_EQ(code_of(a.final()), "bad_request");
  // b's job is still there and runs.
  RawWorker worker(broker.endpoint, "ecg-fm");
  auto req = worker.next();
  ASSERT_TRUE(req);
  EXPECT_EQ(job_of(*req).id, "b1");
}

}  // namespace
}  // namespace ecgq::test
