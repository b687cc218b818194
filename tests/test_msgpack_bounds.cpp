// The pre-unpack scan of msgpack bodies (protocol/msgpack_bounds.hpp) and the bounds the job
// decoder enforces on top of it: hostile shapes are refused before anything is allocated for
// them, and every integer field and the job id have a range named in the error.
#include <gtest/gtest.h>

#include <msgpack.hpp>
#include <string>

#include "protocol/msgpack_bounds.hpp"
#include "protocol/schema.hpp"

namespace ecgq::schema {
namespace {

// `n` nils inside one array32, inside a one-entry map {"meta": [...]}.
std::string map_of_nils(uint32_t n) {
  msgpack::sbuffer buf;
  msgpack::packer<msgpack::sbuffer> pk(buf);
  pk.pack_map(1);
  pk.pack(std::string("meta"));
  pk.pack_array(n);
  for (uint32_t i = 0; i < n; ++i) pk.pack_nil();
  return std::string(buf.data(), buf.size());
}

// `depth` arrays each holding the next, the innermost holding a nil.
std::string nested(size_t depth) {
  return std::string(depth, '\x91') + std::string("\xc0", 1);
}

// The message of a failed check, or "ok".
std::string check(const std::string& body, const MsgpackBounds& b = {}) {
  const Status s = check_msgpack_bounds(body, b);
  if (s.ok()) return "ok";
  EXPECT_EQ(s.code(), "bad_request");
  EXPECT_EQ(s.field(), "");
  return s.message();
}

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

TEST(MsgpackBounds, AcceptsWellFormedBodies) {
  EXPECT_EQ(check(map_of_nils(1000)), "ok");
  EXPECT_EQ(check(nested(15)), "ok");
  Job job;
  job.id = "a";
  job.ecg = TypedArray{"f32", {1, 4}, std::string(16, '\0')};
  job.fs = 500;
  job.leads = {"I"};
  job.meta = std::string("\x81\xa1k\xa1v", 5);
  EXPECT_EQ(check(encode_job(job)), "ok");
}

TEST(MsgpackBounds, RefusesDeclaredLengthsPastTheEnd) {
  // array32 of 4G elements with nothing after it: msgpack-c would reserve 64 GiB of objects.
  EXPECT_TRUE(contains(check(std::string("\xdd\xff\xff\xff\xff", 5)), "declares 4294967295"));
  // map32 of 4G entries after a valid prefix.
  EXPECT_TRUE(contains(check(std::string("\x81\xa1m\xdf\xff\xff\xff\xff\xc0", 9)), "elements"));
  // str32 and bin32 claiming 4 GiB.
  EXPECT_TRUE(contains(check(std::string("\xdb\xff\xff\xff\xff"
                                         "abc",
                                         8)),
                       "bytes but only 3"));
  EXPECT_TRUE(contains(check(std::string("\xc6\x7f\xff\xff\xff", 5)), "bytes but only 0"));
  // ext32 and a float cut short.
  EXPECT_NE(check(std::string("\xc9\x00\x00\x00\x10\x01", 6)), "ok");
  EXPECT_TRUE(contains(check(std::string("\xcb\x00\x00", 3)), "bytes but only 2"));
  EXPECT_TRUE(contains(check(std::string("\xdf\x00", 2)), "truncated"));
}

TEST(MsgpackBounds, RefusesDeepNesting) {
  EXPECT_TRUE(contains(check(nested(17)), "nests deeper than 16"));
  EXPECT_TRUE(contains(check(nested(5), MsgpackBounds{4, 100}), "nests deeper than 4"));
  // 100 MiB of [[[[...]]]] would otherwise recurse 100 million levels.
  EXPECT_TRUE(contains(check(nested(1 << 20)), "nests deeper"));
}

TEST(MsgpackBounds, RefusesTooManyValues) {
  EXPECT_TRUE(contains(check(map_of_nils(2000), MsgpackBounds{16, 1000}), "more than 1000"));
  EXPECT_TRUE(contains(check(map_of_nils((1 << 20) + 1)), "more than 1048576 msgpack values"));
}

TEST(MsgpackBounds, RefusesInvalidAndTrailingBytes) {
  EXPECT_TRUE(contains(check(std::string("\xc1", 1)), "0xc1"));
  EXPECT_TRUE(contains(check(std::string("\xc0\xc0", 2)), "1 trailing bytes"));
  EXPECT_TRUE(contains(check(""), "empty"));
}

TEST(MsgpackBounds, JobDecoderRefusesHostileBodiesBeforeUnpacking) {
  // Ten million nils (10 MB) would cost 160 MB of msgpack objects; the scan stops at 1 Mi.
  auto d = decode_job(map_of_nils(10'000'000));
  ASSERT_FALSE(d.ok());
  EXPECT_TRUE(contains(d.status().message(), "more than 1048576")) << d.status().message();
}

// A valid job with `id` and, when >= 0 or given raw, a deadline_ms entry.
std::string job_with(const std::string& id, const std::string& raw_deadline = "") {
  msgpack::sbuffer buf;
  msgpack::packer<msgpack::sbuffer> pk(buf);
  pk.pack_map(raw_deadline.empty() ? 5 : 6);
  pk.pack(std::string("v"));
  pk.pack(1);
  pk.pack(std::string("id"));
  pk.pack(id);
  pk.pack(std::string("ecg"));
  pk.pack_map(3);
  pk.pack(std::string("dtype"));
  pk.pack(std::string("f32"));
  pk.pack(std::string("shape"));
  pk.pack(std::vector<int>{1, 2});
  pk.pack(std::string("data"));
  pk.pack_bin(8);
  pk.pack_bin_body("\0\0\0\0\0\0\0\0", 8);
  pk.pack(std::string("fs"));
  pk.pack(500);
  pk.pack(std::string("leads"));
  pk.pack(std::vector<std::string>{"I"});
  if (!raw_deadline.empty()) {
    pk.pack(std::string("deadline_ms"));
    buf.write(raw_deadline.data(), raw_deadline.size());
  }
  return std::string(buf.data(), buf.size());
}

template <typename T>
std::string mp(const T& value) {
  msgpack::sbuffer buf;
  msgpack::pack(buf, value);
  return std::string(buf.data(), buf.size());
}

// The decoder's error for `body` as "code field: message", or "ok".
std::string job_error(const std::string& body) {
  auto d = decode_job(body);
  if (d.ok()) return "ok";
  return d.status().code() + " " + d.status().field() + ": " + d.status().message();
}

TEST(MsgpackBounds, JobIdsLongerThan128BytesAreRefused) {
  EXPECT_EQ(job_error(job_with(std::string(128, 'a'))), "ok");
  EXPECT_EQ(job_error(job_with(std::string(129, 'a'))),
            "bad_request id: id is 129 bytes; at most 128 are allowed");
  EXPECT_TRUE(contains(job_error(job_with(std::string(1 << 20, 'a'))), "id is 1048576 bytes"));
}

TEST(MsgpackBounds, DeadlineIsRangeChecked) {
  EXPECT_EQ(job_error(job_with("a", mp(0))), "ok");
  EXPECT_EQ(job_error(job_with("a", mp(int64_t{2592000000}))), "ok");
  const std::string range =
      "bad_request deadline_ms: deadline_ms must be from 0 to 2592000000 (30 days), got ";
  EXPECT_EQ(job_error(job_with("a", mp(-1))), range + "-1");
  EXPECT_EQ(job_error(job_with("a", mp(int64_t{10'000'000'000'000}))), range + "10000000000000");
  EXPECT_EQ(job_error(job_with("a", mp(uint64_t{18'000'000'000'000'000'000u}))),
            "bad_request deadline_ms: deadline_ms must be an integer that fits in 64 signed "
            "bits, got 18000000000000000000");
}

}  // namespace
}  // namespace ecgq::schema
