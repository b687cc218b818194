// The broker's CURVE admission on real sockets: a ROUTER with curve_server and the ZAP handler
// in one context, peers with allowed, unknown, removed and no keys. Refusals are observed
// through the socket monitor's handshake events, never by waiting a fixed time.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <zmq.hpp>

#include "broker/key_store.hpp"
#include "broker/zap_handler.hpp"
#include "protocol/curve.hpp"
#include "protocol/zmq_frames.hpp"
#include "tests/support/process.hpp"

namespace ecgq::broker {
namespace {

using Clock = std::chrono::steady_clock;

struct Received {
  mdp::Frames frames;
  std::string user_id;
};

// The ROUTER side of a CURVE broker, pumped by the test: answers ZAP, collects messages and
// handshake events.
class CurveServer {
 public:
  CurveServer(const curve::Certificate& server, std::shared_ptr<const KeyStore> keys)
      : zap_(ctx_, std::move(keys)),
        router_(ctx_, zmq::socket_type::router),
        monitor_(ctx_, zmq::socket_type::pair) {
    router_.set(zmq::sockopt::curve_server, 1);
    router_.set(zmq::sockopt::curve_secretkey, server.secret_key);
    zmq_socket_monitor(router_.handle(), "inproc://monitor",
                       ZMQ_EVENT_HANDSHAKE_SUCCEEDED | ZMQ_EVENT_HANDSHAKE_FAILED_AUTH |
                           ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |
                           ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL);
    monitor_.connect("inproc://monitor");
    router_.bind("tcp://127.0.0.1:*");
    endpoint_ = router_.get(zmq::sockopt::last_endpoint);
  }
  const std::string& endpoint() const { return endpoint_; }
  ZapHandler& zap() { return zap_; }

  // Pumps until `done` holds (10 s at most); true when it did.
  bool pump_until(const std::function<bool()>& done) {
    const auto until = Clock::now() + std::chrono::seconds(10);
    while (!done()) {
      if (Clock::now() > until) return false;
      zmq::pollitem_t items[] = {{router_.handle(), 0, ZMQ_POLLIN, 0},
                                 {zap_.socket().handle(), 0, ZMQ_POLLIN, 0},
                                 {monitor_.handle(), 0, ZMQ_POLLIN, 0}};
      zmq::poll(items, 3, std::chrono::milliseconds(100));
      if (items[1].revents & ZMQ_POLLIN) zap_.answer_pending();
      if (items[0].revents & ZMQ_POLLIN) {
        Received r;
        auto f = mdp::recv_frames(router_, zmq::recv_flags::dontwait, &r.user_id);
        if (f) {
          r.frames = std::move(*f);
          received.push_back(std::move(r));
        }
      }
      if (items[2].revents & ZMQ_POLLIN) {
        auto ev = mdp::recv_frames(monitor_, zmq::recv_flags::dontwait);
        if (ev && !ev->empty() && (*ev)[0].size() >= 2) {
          const uint16_t id = static_cast<uint16_t>(static_cast<unsigned char>((*ev)[0][0]) |
                                                    (static_cast<unsigned char>((*ev)[0][1]) << 8));
          if (id == ZMQ_EVENT_HANDSHAKE_SUCCEEDED)
            ++handshakes_ok;
          else
            ++handshakes_failed;
        }
      }
    }
    return true;
  }

  std::vector<Received> received;
  int handshakes_ok = 0;
  int handshakes_failed = 0;

 private:
  zmq::context_t ctx_;
  ZapHandler zap_;
  zmq::socket_t router_;
  zmq::socket_t monitor_;
  std::string endpoint_;
};

zmq::socket_t curve_dealer(zmq::context_t& ctx, const std::string& server_key,
                           const curve::Certificate* own) {
  zmq::socket_t d(ctx, zmq::socket_type::dealer);
  d.set(zmq::sockopt::linger, 0);
  if (own) {
    d.set(zmq::sockopt::curve_serverkey, server_key);
    d.set(zmq::sockopt::curve_publickey, own->public_key);
    d.set(zmq::sockopt::curve_secretkey, own->secret_key);
  }
  return d;
}

class ZapTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const char* d : {"clients", "workers", "admins"})
      std::filesystem::create_directories(dir_.file(d));
    server_ = *curve::generate();
    client_ = *curve::generate();
    worker_ = *curve::generate();
    stranger_ = *curve::generate();
    ASSERT_TRUE(curve::write_pair(dir_.file("clients/c1"), client_).ok());
    ASSERT_TRUE(curve::write_pair(dir_.file("workers/w1"), worker_).ok());
    // Only public certificates belong in the lists: move the secrets out.
    std::filesystem::rename(dir_.file("clients/c1_secret"), dir_.file("c1_secret"));
    std::filesystem::rename(dir_.file("workers/w1_secret"), dir_.file("w1_secret"));
  }
  KeyDirectories dirs() const {
    return {dir_.file("clients"), dir_.file("workers"), dir_.file("admins")};
  }

  test::TempDir dir_;
  curve::Certificate server_, client_, worker_, stranger_;
};

TEST_F(ZapTest, KeysInTheListsGetInWithTheirRolesAndOthersAreRefused) {
  auto keys = KeyStore::load(dirs());
  ASSERT_TRUE(keys.ok()) << keys.status().to_string();
  EXPECT_EQ(keys->size(), 2u);
  EXPECT_EQ(keys->roles(client_.public_key), unsigned{kRoleClient});
  EXPECT_EQ(keys->roles(worker_.public_key), unsigned{kRoleWorker});
  EXPECT_EQ(keys->roles(stranger_.public_key), 0u);

  CurveServer server(server_, std::make_shared<KeyStore>(*keys));
  zmq::context_t ctx;
  auto good = curve_dealer(ctx, server_.public_key, &client_);
  good.connect(server.endpoint());
  mdp::send_frames(good, {"from-client"});
  ASSERT_TRUE(server.pump_until([&] { return !server.received.empty(); }));
  EXPECT_EQ(server.received[0].frames.back(), "from-client");
  EXPECT_EQ(server.received[0].user_id, client_.public_key);

  auto unknown = curve_dealer(ctx, server_.public_key, &stranger_);
  unknown.connect(server.endpoint());
  mdp::send_frames(unknown, {"from-stranger"});
  ASSERT_TRUE(server.pump_until([&] { return server.zap().refused() == 1; }));
  ASSERT_TRUE(server.pump_until([&] { return server.handshakes_failed >= 1; }));

  auto plain = curve_dealer(ctx, "", nullptr);
  plain.connect(server.endpoint());
  mdp::send_frames(plain, {"plaintext"});
  ASSERT_TRUE(server.pump_until([&] { return server.handshakes_failed >= 2; }));

  // Authorised traffic still flows; nothing from the refused peers ever arrived.
  mdp::send_frames(good, {"again"});
  ASSERT_TRUE(server.pump_until([&] { return server.received.size() == 2; }));
  for (const auto& r : server.received) EXPECT_EQ(r.user_id, client_.public_key);
}

TEST_F(ZapTest, AKeyRemovedByAReloadIsRefusedAtItsNextHandshake) {
  CurveServer server(server_, std::make_shared<KeyStore>(*KeyStore::load(dirs())));
  zmq::context_t ctx;
  auto first = curve_dealer(ctx, server_.public_key, &worker_);
  first.connect(server.endpoint());
  mdp::send_frames(first, {"before"});
  ASSERT_TRUE(server.pump_until([&] { return server.received.size() == 1; }));

  std::filesystem::remove(dir_.file("workers/w1"));
  auto reloaded = KeyStore::load(dirs());
  ASSERT_TRUE(reloaded.ok());
  EXPECT_EQ(reloaded->roles(worker_.public_key), 0u);  // the broker ignores its open connection
  server.zap().set_keys(std::make_shared<KeyStore>(*reloaded));

  auto second = curve_dealer(ctx, server_.public_key, &worker_);
  second.connect(server.endpoint());
  mdp::send_frames(second, {"after"});
  ASSERT_TRUE(server.pump_until([&] { return server.zap().refused() == 1; }));
  EXPECT_EQ(server.received.size(), 1u);
}

TEST_F(ZapTest, AMissingDirectoryIsNamedAndSecretsInAListAreReported) {
  auto missing = KeyStore::load({dir_.file("nope"), "", ""});
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("nope"), std::string::npos);
  std::filesystem::copy_file(dir_.file("c1_secret"), dir_.file("admins/leaked_secret"));
  auto keys = KeyStore::load(dirs());
  ASSERT_TRUE(keys.ok());
  ASSERT_EQ(keys->skipped().size(), 1u);
  EXPECT_NE(keys->skipped()[0].find("secret"), std::string::npos);
  EXPECT_EQ(keys->roles(client_.public_key), unsigned{kRoleClient});  // not admin
  EXPECT_EQ(role_names(kRoleWorker | kRoleAdmin), "worker+admin");
}

}  // namespace
}  // namespace ecgq::broker
