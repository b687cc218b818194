// MDP 0.2 frame parsing and building (common/protocol.hpp): every command, every malformed case.
#include <gtest/gtest.h>

#include "protocol/protocol.hpp"

namespace ecgq::mdp {
namespace {

std::string b(int c) {
  return std::string(1, static_cast<char>(c));
}

void expect_bad(const Status& s, const std::string& mentions) {
  EXPECT_EQ(s.code(), "bad_frame");
  EXPECT_NE(s.message().find(mentions), std::string::npos) << s.message();
}

TEST(PeerKind, ToldApartByHeader) {
  EXPECT_EQ(*peer_kind({"MDPC02", b(1), "svc"}), PeerKind::Client);
  EXPECT_EQ(*peer_kind({"MDPW02", b(5)}), PeerKind::Worker);
  expect_bad(peer_kind({}).status(), "empty");
  expect_bad(peer_kind({"MDPC01", b(1)}).status(), "frame 0");
  expect_bad(peer_kind({"", "MDPC02"}).status(), "frame 0");  // MDP 0.1's empty frame is gone
}

TEST(ParseClient, Request) {
  auto m = parse_client({"MDPC02", b(1), "ecg-fm", "body1", std::string("\0x", 2)});
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->command, ClientCommand::Request);
  EXPECT_EQ(m->service, "ecg-fm");
  EXPECT_EQ(m->body, (Frames{"body1", std::string("\0x", 2)}));
  auto empty = parse_client({"MDPC02", b(1), "svc"});
  ASSERT_TRUE(empty.ok());
  EXPECT_TRUE(empty->body.empty());
  EXPECT_EQ(parse_client({"MDPC02", b(2), "s", "p"})->command, ClientCommand::Partial);
  EXPECT_EQ(parse_client({"MDPC02", b(3), "s", "f"})->command, ClientCommand::Final);
}

TEST(ParseClient, Malformed) {
  expect_bad(parse_client({"MDPC02", b(1)}).status(), "at least 3 frames");
  expect_bad(parse_client({}).status(), "at least 3 frames");
  expect_bad(parse_client({"MDPW02", b(1), "svc"}).status(), "frame 0");
  expect_bad(parse_client({"MDPC02", "", "svc"}).status(), "one byte");
  expect_bad(parse_client({"MDPC02", "\x01\x01", "svc"}).status(), "one byte");
  expect_bad(parse_client({"MDPC02", b(0), "svc"}).status(), "unknown client command");
  expect_bad(parse_client({"MDPC02", b(4), "svc"}).status(), "unknown client command");
  expect_bad(parse_client({"MDPC02", b(0xff), "svc"}).status(), "unknown client command");
}

TEST(ParseWorker, Ready) {
  auto m = parse_worker({"MDPW02", b(1), "ecg-fm"});
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->command, WorkerCommand::Ready);
  EXPECT_EQ(m->service, "ecg-fm");
  EXPECT_TRUE(m->body.empty());
  auto meta = parse_worker({"MDPW02", b(1), "ecg-fm", "\x81\xa1v\x01"});
  ASSERT_TRUE(meta.ok());
  EXPECT_EQ(meta->body, (Frames{"\x81\xa1v\x01"}));
  expect_bad(parse_worker({"MDPW02", b(1)}).status(), "service frame");
  expect_bad(parse_worker({"MDPW02", b(1), ""}).status(), "empty");
}

TEST(ParseWorker, RequestPartialFinalCarryAddressAndEmptyFrame) {
  for (int c : {2, 3, 4}) {
    auto m = parse_worker({"MDPW02", b(c), "addr", "", "x", "y"});
    ASSERT_TRUE(m.ok()) << c;
    EXPECT_EQ(static_cast<int>(m->command), c);
    EXPECT_EQ(m->reply_to, "addr");
    EXPECT_EQ(m->body, (Frames{"x", "y"}));
    auto no_body = parse_worker({"MDPW02", b(c), "addr", ""});
    ASSERT_TRUE(no_body.ok());
    EXPECT_TRUE(no_body->body.empty());
    expect_bad(parse_worker({"MDPW02", b(c), "addr"}).status(), "needs client address");
    expect_bad(parse_worker({"MDPW02", b(c)}).status(), "needs client address");
    expect_bad(parse_worker({"MDPW02", b(c), "addr", "not-empty", "x"}).status(),
               "empty separator");
  }
  // The address is opaque bytes (ecgq uses an 8-byte job token), NULs included.
  const std::string token("\0\0\0\0\0\0\0\x2a", 8);
  EXPECT_EQ(parse_worker({"MDPW02", b(4), token, "", "r"})->reply_to, token);
}

TEST(ParseWorker, HeartbeatAndDisconnect) {
  auto hb = parse_worker({"MDPW02", b(5)});
  ASSERT_TRUE(hb.ok());
  EXPECT_EQ(hb->command, WorkerCommand::Heartbeat);
  EXPECT_TRUE(hb->body.empty());
  auto hb_status = parse_worker({"MDPW02", b(5), "status"});
  ASSERT_TRUE(hb_status.ok());
  EXPECT_EQ(hb_status->body, (Frames{"status"}));
  auto d = parse_worker({"MDPW02", b(6)});
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->command, WorkerCommand::Disconnect);
}

TEST(ParseWorker, Malformed) {
  expect_bad(parse_worker({}).status(), "at least 2 frames");
  expect_bad(parse_worker({"MDPW02"}).status(), "at least 2 frames");
  expect_bad(parse_worker({"MDPC02", b(5)}).status(), "frame 0");
  expect_bad(parse_worker({"MDPW01", b(5)}).status(), "frame 0");
  expect_bad(parse_worker({"MDPW02", ""}).status(), "one byte");
  expect_bad(parse_worker({"MDPW02", "\x05\x05"}).status(), "one byte");
  expect_bad(parse_worker({"MDPW02", b(0)}).status(), "unknown worker command");
  expect_bad(parse_worker({"MDPW02", b(7)}).status(), "unknown worker command");
  expect_bad(parse_worker({"MDPW02", b(0x80)}).status(), "unknown worker command");
}

TEST(Build, EveryCommandMatchesTheRfcLayout) {
  EXPECT_EQ(client_frames(ClientCommand::Request, "svc", {"a", "b"}),
            (Frames{"MDPC02", b(1), "svc", "a", "b"}));
  EXPECT_EQ(client_frames(ClientCommand::Partial, "svc", {"p"}),
            (Frames{"MDPC02", b(2), "svc", "p"}));
  EXPECT_EQ(client_frames(ClientCommand::Final, "svc", {}), (Frames{"MDPC02", b(3), "svc"}));
  EXPECT_EQ(ready_frames("svc"), (Frames{"MDPW02", b(1), "svc"}));
  EXPECT_EQ(ready_frames("svc", "meta"), (Frames{"MDPW02", b(1), "svc", "meta"}));
  EXPECT_EQ(worker_reply_frames(WorkerCommand::Request, "tok", {"x"}),
            (Frames{"MDPW02", b(2), "tok", "", "x"}));
  EXPECT_EQ(worker_reply_frames(WorkerCommand::Partial, "tok", {"x"}),
            (Frames{"MDPW02", b(3), "tok", "", "x"}));
  EXPECT_EQ(worker_reply_frames(WorkerCommand::Final, "tok", {"x", "y"}),
            (Frames{"MDPW02", b(4), "tok", "", "x", "y"}));
  EXPECT_EQ(heartbeat_frames(), (Frames{"MDPW02", b(5)}));
  EXPECT_EQ(heartbeat_frames("st"), (Frames{"MDPW02", b(5), "st"}));
  EXPECT_EQ(disconnect_frames(), (Frames{"MDPW02", b(6)}));
}

TEST(Build, RoundTripsThroughTheParsers) {
  auto r = parse_worker(worker_reply_frames(WorkerCommand::Final, "t", {"body"}));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->reply_to, "t");
  EXPECT_EQ(r->body, (Frames{"body"}));
  auto c = parse_client(client_frames(ClientCommand::Final, "svc", {"x"}));
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->service, "svc");
  auto ready = parse_worker(ready_frames("svc", "m"));
  ASSERT_TRUE(ready.ok());
  EXPECT_EQ(ready->body, (Frames{"m"}));
}

TEST(CommandName, ForLogs) {
  EXPECT_STREQ(command_name(WorkerCommand::Ready), "READY");
  EXPECT_STREQ(command_name(WorkerCommand::Disconnect), "DISCONNECT");
  EXPECT_STREQ(command_name(ClientCommand::Partial), "PARTIAL");
  EXPECT_STREQ(command_name(static_cast<WorkerCommand>(9)), "UNKNOWN");
}

}  // namespace
}  // namespace ecgq::mdp
