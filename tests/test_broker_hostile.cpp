// The real broker under hostile bodies (issue 12, "Bounded under hostile input"): each is
// answered with a specific error, the broker keeps serving another client, and its peak RSS
// (VmHWM) stays within a small multiple of the body size.
#include <gtest/gtest.h>

#include <fstream>

#include "tests/test_broker_peers.hpp"

namespace ecgq::test {
namespace {

constexpr size_t kMiB = size_t{1} << 20;

// Peak resident set of a process in bytes (VmHWM).
size_t peak_rss(int pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("VmHWM:", 0) == 0) return std::stoull(line.substr(6)) * 1024;
  ADD_FAILURE() << "no VmHWM for " << pid;
  return 0;
}

// The FINAL error {code, field, message} for `body` sent to `service`.
schema::ErrorInfo error_for(const std::string& endpoint, const std::string& service,
                            const Frames& body) {
  RawClient c(endpoint);
  c.request(service, body);
  auto final = c.final(20s);
  EXPECT_TRUE(final.has_value()) << "no answer";
  if (!final) return {};
  auto r = result_of(*final);
  EXPECT_TRUE(r.error.has_value());
  return r.error ? *r.error : schema::ErrorInfo{};
}

// Another client is still served: mmi.service answers.
void expect_serving(const BrokerProcess& b) {
  RawClient other(b.endpoint);
  EXPECT_TRUE(other.mmi("mmi.service", "ecg-fm").has_value());
}

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

// A map {"meta": [n nils]} of `bytes` bytes.
std::string nested_nils(size_t bytes) {
  const size_t n = bytes - 10;
  std::string body("\x81\xa4meta\xdd", 7);
  for (int shift = 24; shift >= 0; shift -= 8)
    body.push_back(static_cast<char>((n >> shift) & 0xff));
  body.append(n, '\xc0');
  return body;
}

TEST(BrokerHostile, NestedNilsAndDeepNestingAreRefusedWithinBoundedMemory) {
  BrokerProcess b;
  ASSERT_TRUE(b.ready);
  const size_t before = peak_rss(b.proc->pid());
  auto e = error_for(b.endpoint, "ecg-fm", {nested_nils(48 * kMiB)});
  EXPECT_EQ(e.code, "bad_request");
  EXPECT_TRUE(contains(e.message, "more than 1048576 msgpack values")) << e.message;
  e = error_for(b.endpoint, "ecg-fm", {std::string(48 * kMiB, '\x91') + std::string("\xc0", 1)});
  EXPECT_EQ(e.code, "bad_request");
  EXPECT_TRUE(contains(e.message, "nests deeper than 16")) << e.message;
  e = error_for(b.endpoint, "ecg-fm", {std::string("\x81\xa4meta\xdd\xff\xff\xff\xff", 11)});
  EXPECT_TRUE(contains(e.message, "declares 4294967295 elements")) << e.message;
  expect_serving(b);
  // The body is held at most twice (libzmq's message and the broker's copy), plus the scan's
  // nothing: before the scan, 48 Mi nils cost msgpack-c 768 MiB of objects.
  EXPECT_LT(peak_rss(b.proc->pid()), before + 3 * 48 * kMiB);
}

TEST(BrokerHostile, SixteenMiBOfMetaIsAcceptedWithinBoundedMemory) {
  BrokerProcess b;
  ASSERT_TRUE(b.ready);
  RawWorker w(b.endpoint, "ecg-fm");
  w.auto_final(true);
  const size_t before = peak_rss(b.proc->pid());
  // 4096 keys of 4 KB strings.
  msgpack::sbuffer meta;
  msgpack::packer<msgpack::sbuffer> pk(meta);
  pk.pack_map(4096);
  for (int i = 0; i < 4096; ++i) {
    pk.pack("k" + std::to_string(i));
    pk.pack(std::string(4096, 'm'));
  }
  schema::Job j;
  j.id = "meta";
  j.ecg = schema::TypedArray{"f32", {1, 4}, std::string(16, '\0')};
  j.fs = 500;
  j.leads = {"I"};
  j.meta = std::string(meta.data(), meta.size());
  RawClient c(b.endpoint);
  c.request("ecg-fm", {schema::encode_job(j)});
  auto final = c.final(20s);
  ASSERT_TRUE(final.has_value());
  EXPECT_EQ(code_of(final), "");
  expect_serving(b);
  EXPECT_LT(peak_rss(b.proc->pid()), before + 6 * 16 * kMiB);
}

TEST(BrokerHostile, AnOversizeFrameGetsMessageTooLargeNotSilence) {
  BrokerProcess b({"--max-message-bytes", "1MiB"});
  ASSERT_TRUE(b.ready);
  auto e = error_for(b.endpoint, "ecg-fm", {std::string(kMiB + kMiB / 2, 'x')});
  EXPECT_EQ(e.code, "message_too_large");
  EXPECT_TRUE(contains(e.message, "max_message_bytes is 1048576")) << e.message;
  expect_serving(b);
}

TEST(BrokerHostile, LongIdsAndServiceNamesAreRefused) {
  BrokerProcess b;
  ASSERT_TRUE(b.ready);
  auto e = error_for(b.endpoint, "ecg-fm", {job_body(std::string(129, 'i'))});
  EXPECT_EQ(e.code, "bad_request");
  EXPECT_EQ(e.field, "id");
  EXPECT_TRUE(contains(e.message, "at most 128")) << e.message;
  e = error_for(b.endpoint, "ecg-fm", {job_body("line\nbreak")});
  EXPECT_EQ(e.field, "id");
  e = error_for(b.endpoint, std::string(200, 's'), {"x"});
  EXPECT_EQ(e.code, "bad_frame");
  EXPECT_TRUE(contains(e.message, "at most 128 bytes")) << e.message;
  e = error_for(b.endpoint, "ecg-fm", {job_body("d", int64_t{10'000'000'000'000})});
  EXPECT_EQ(e.field, "deadline_ms");
  expect_serving(b);
}

TEST(BrokerHostile, ManyServicesAndQueuedBytesEndInQueueFullNamingTheBound) {
  BrokerProcess b(
      {"--max-services", "4", "--max-queued-bytes", "1MiB", "--result-cache-entries", "0"});
  ASSERT_TRUE(b.ready);
  // One client, so the broker sees its requests in order; queued generic jobs get no reply.
  RawClient c(b.endpoint);
  auto refusal = [&](const std::string& service, const std::string& body) {
    c.request(service, {body});
    auto final = c.final(20s);
    EXPECT_TRUE(final.has_value()) << service << ": no answer";
    auto r = final ? result_of(*final) : schema::Result{};
    return r.error ? *r.error : schema::ErrorInfo{};
  };
  for (int i = 0; i < 4; ++i) c.request("made-up-" + std::to_string(i), {"x"});
  auto e = refusal("made-up-4", "x");
  EXPECT_EQ(e.code, "queue_full");
  EXPECT_TRUE(contains(e.message, "max_services=4")) << e.message;
  c.request("made-up-0", {std::string(900 * 1024, 'b')});
  e = refusal("made-up-1", std::string(200 * 1024, 'b'));
  EXPECT_EQ(e.code, "queue_full");
  EXPECT_TRUE(contains(e.message, "max_queued_bytes=1048576")) << e.message;
  expect_serving(b);
}

TEST(BrokerHostile, ALargeBodyCopiedOffTheLoopKeepsItsPeersOrder) {
  BrokerProcess b;
  ASSERT_TRUE(b.ready);
  // An echoing worker with one slot: it runs the jobs in the order the broker took them in, and
  // its 8 MiB FINAL is a large message from a worker.
  RawWorker w(b.endpoint, "echo");
  w.auto_final(true, /*echo=*/true);
  RawClient c(b.endpoint);
  const std::string big(8 * kMiB, 'b');
  c.request("echo", {big});
  c.request("echo", {"small-1"});
  c.request("echo", {"small-2"});
  // Another client is served while the large body is copied.
  expect_serving(b);
  for (const std::string& expected : {big, std::string("small-1"), std::string("small-2")}) {
    auto final = c.final(30s);
    ASSERT_TRUE(final.has_value()) << "no answer for a " << expected.size() << "-byte body";
    ASSERT_EQ(final->size(), 4u);
    EXPECT_EQ(final->at(3).size(), expected.size());
    EXPECT_TRUE(final->at(3) == expected) << "answers out of order";
  }
  const auto requests = w.requests();
  ASSERT_EQ(requests.size(), 3u);
  EXPECT_EQ(requests[0].at(4).size(), big.size());
  EXPECT_EQ(requests[1].at(4), "small-1");
  EXPECT_EQ(requests[2].at(4), "small-2");
}

}  // namespace
}  // namespace ecgq::test
