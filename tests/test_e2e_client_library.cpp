// The client library against a scripted broker (a real ROUTER socket in the test): replies matched
// by id whatever their order, progress delivered, duplicates and strangers ignored, MMI calls
// interleaved with job traffic, and a silent broker reported instead of waited on forever.
#include <gtest/gtest.h>

#include <thread>
#include <zmq.hpp>

#include "client/client.hpp"
#include "protocol/zmq_frames.hpp"
#include "tests/support/process.hpp"

namespace ecgq::test {
namespace {

using namespace std::chrono_literals;

// A ROUTER that plays broker one message at a time.
class ScriptedBroker {
 public:
  ScriptedBroker() : socket_(context_, zmq::socket_type::router), endpoint(free_endpoint()) {
    socket_.set(zmq::sockopt::linger, 0);
    socket_.bind(endpoint);
  }
  // The next client message: [identity, MDPC02, command, service, body...].
  std::optional<mdp::Frames> next(Millis wait = 5s) {
    zmq::pollitem_t item{socket_.handle(), 0, ZMQ_POLLIN, 0};
    zmq::poll(&item, 1, wait);
    if ((item.revents & ZMQ_POLLIN) == 0) return std::nullopt;
    return mdp::recv_frames(socket_);
  }
  // Sends a client command to `peer`.
  void reply(const std::string& peer, mdp::ClientCommand command, const std::string& service,
             const std::string& body) {
    mdp::Frames f = mdp::client_frames(command, service, {body});
    f.insert(f.begin(), peer);
    mdp::send_frames(socket_, f);
  }

 private:
  zmq::context_t context_;
  zmq::socket_t socket_;

 public:
  std::string endpoint;
};

schema::Job tiny_job() {
  schema::Job j;
  j.ecg = {"f32", {1, 1}, std::string(4, '\0')};
  j.fs = 500;
  j.leads = {"I"};
  return j;
}

std::string ok_result(const std::string& id) {
  schema::Result r;
  r.id = id;
  r.worker_id = "w";
  return schema::encode_result(r);
}

std::unique_ptr<client::Client> make_client(const std::string& endpoint, Millis timeout = 5s) {
  client::ClientOptions o;
  o.broker = endpoint;
  o.timeout = timeout;
  o.id_prefix = "t";
  o.check_service = false;  // the scripted broker answers only what each test scripts
  return std::make_unique<client::Client>(o);
}

// Polls until an event arrives (or fails the test).
client::JobEvent next_event(client::Client& c) {
  for (int i = 0; i < 100; ++i) {
    auto ev = c.poll(50ms);
    EXPECT_TRUE(ev.ok()) << ev.status().to_string();
    if (!ev.ok()) return {};
    if (ev->has_value()) return **ev;
  }
  ADD_FAILURE() << "no event";
  return {};
}

TEST(ClientLibrary, RepliesAreMatchedByIdInAnyOrder) {
  ScriptedBroker broker;
  auto c = make_client(broker.endpoint);
  std::vector<std::string> ids;
  std::string peer;
  for (int i = 0; i < 3; ++i) {
    auto id = c->submit(tiny_job());
    ASSERT_TRUE(id.ok());
    EXPECT_EQ(*id, "t-" + std::to_string(i + 1));
    ids.push_back(*id);
    auto m = broker.next();
    ASSERT_TRUE(m.has_value());
    ASSERT_EQ(m->size(), 5u);
    EXPECT_EQ((*m)[1], "MDPC02");
    EXPECT_EQ((*m)[3], "ecg-fm");
    auto job = schema::decode_job((*m)[4]);
    ASSERT_TRUE(job.ok()) << job.status().to_string();
    EXPECT_EQ(job->id, *id);  // the library always sets the id
    peer = (*m)[0];
  }
  EXPECT_EQ(c->outstanding(), 3u);
  broker.reply(peer, mdp::ClientCommand::Partial, "ecg-fm",
               schema::encode_progress({ids[1], "running", -1, "w9"}));
  broker.reply(peer, mdp::ClientCommand::Final, "ecg-fm", ok_result(ids[2]));
  broker.reply(peer, mdp::ClientCommand::Final, "ecg-fm", ok_result("someone-else"));
  broker.reply(peer, mdp::ClientCommand::Final, "ecg-fm", ok_result(ids[0]));
  broker.reply(peer, mdp::ClientCommand::Final, "ecg-fm", ok_result(ids[2]));  // duplicate
  broker.reply(peer, mdp::ClientCommand::Final, "ecg-fm", ok_result(ids[1]));

  auto e1 = next_event(*c);
  EXPECT_EQ(e1.id, ids[1]);
  ASSERT_TRUE(e1.progress.has_value());
  EXPECT_EQ(e1.progress->worker_id, "w9");
  std::vector<std::string> finals;
  for (int i = 0; i < 3; ++i) {
    auto e = next_event(*c);
    ASSERT_TRUE(e.result.has_value());
    finals.push_back(e.id);
  }
  EXPECT_EQ(finals, (std::vector<std::string>{ids[2], ids[0], ids[1]}));
  EXPECT_EQ(c->outstanding(), 0u);
  auto none = c->poll(100ms);
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->has_value()) << "the duplicate FINAL was delivered";
}

TEST(ClientLibrary, MmiCallsInterleaveWithJobTraffic) {
  ScriptedBroker broker;
  auto c = make_client(broker.endpoint);
  auto id = c->submit(tiny_job());
  ASSERT_TRUE(id.ok());
  auto job = broker.next();
  ASSERT_TRUE(job.has_value());
  const std::string peer = (*job)[0];
  std::thread answer([&] {
    auto m = broker.next();
    ASSERT_TRUE(m.has_value());
    EXPECT_EQ((*m)[3], "mmi.service");
    EXPECT_EQ((*m)[4], "ecg-fm");
    // A job result arrives before the MMI reply: it must be kept for poll().
    broker.reply(peer, mdp::ClientCommand::Final, "ecg-fm", ok_result(*id));
    broker.reply(peer, mdp::ClientCommand::Final, "mmi.service", "200");
  });
  auto up = c->service_available("ecg-fm", 5s);
  answer.join();
  ASSERT_TRUE(up.ok()) << up.status().to_string();
  EXPECT_TRUE(*up);
  auto e = next_event(*c);
  EXPECT_EQ(e.id, *id);
  EXPECT_TRUE(e.result.has_value());
}

TEST(ClientLibrary, BrokerErrorWithoutIdGoesToTheOnlyOutstandingJob) {
  ScriptedBroker broker;
  auto c = make_client(broker.endpoint);
  const std::string id = c->next_id();
  ASSERT_TRUE(c->submit_body(id, "garbage").ok());
  auto m = broker.next();
  ASSERT_TRUE(m.has_value());
  schema::Result err;
  err.status = "error";
  err.error = schema::ErrorInfo{"bad_request", "body is not valid msgpack", "", std::nullopt};
  broker.reply((*m)[0], mdp::ClientCommand::Final, "ecg-fm", schema::encode_result(err));
  auto e = next_event(*c);
  EXPECT_EQ(e.id, id);
  ASSERT_TRUE(e.result.has_value());
  EXPECT_EQ(e.result->error->code, "bad_request");
}

TEST(ClientLibrary, SilentBrokerIsReportedNotWaitedOn) {
  ScriptedBroker broker;
  auto c = make_client(broker.endpoint, 300ms);
  ASSERT_TRUE(c->submit(tiny_job()).ok());
  ASSERT_TRUE(broker.next().has_value());  // received, never answered
  Status failure;
  ASSERT_TRUE(wait_until(
      [&] {
        auto ev = c->poll(50ms);
        if (!ev.ok()) failure = ev.status();
        return !failure.ok();
      },
      10s));
  EXPECT_EQ(failure.code(), "broker_unreachable");
  EXPECT_NE(failure.message().find("no reply from broker " + broker.endpoint + " for 300ms"),
            std::string::npos)
      << failure.message();
  EXPECT_EQ(c->outstanding(), 0u);
  // Nothing outstanding: quiet is fine.
  auto quiet = c->poll(400ms);
  EXPECT_TRUE(quiet.ok());
}

TEST(ClientLibrary, OversizedBodyFailsLocally) {
  ScriptedBroker broker;
  client::ClientOptions o;
  o.broker = broker.endpoint;
  o.max_message_bytes = 100;
  client::Client c(o);
  schema::Job big = tiny_job();
  big.ecg = {"f32", {1, 64}, std::string(256, '\0')};
  auto id = c.submit(big);
  ASSERT_FALSE(id.ok());
  EXPECT_EQ(id.status().code(), "message_too_large");
  EXPECT_EQ(c.outstanding(), 0u);
  EXPECT_FALSE(broker.next(200ms).has_value());
}

}  // namespace
}  // namespace ecgq::test
