// What the broker does to job bodies (common/schema_envelope.cpp): peek_job agrees with
// decode_job, add_dispatch appends without re-encoding, error_result decodes as a result.
#include <gtest/gtest.h>

#include "tests/test_broker_peers.hpp"

namespace ecgq::test {
namespace {

using Entries = std::vector<std::pair<std::string, std::string>>;

std::string bin(const std::string& bytes) {
  msgpack::sbuffer buf;
  msgpack::packer<msgpack::sbuffer> pk(buf);
  pk.pack_bin(static_cast<uint32_t>(bytes.size()));
  pk.pack_bin_body(bytes.data(), static_cast<uint32_t>(bytes.size()));
  return std::string(buf.data(), buf.size());
}

Entries valid_entries() {
  return {{"v", mp(1)},
          {"id", mp(std::string("j1"))},
          {"ecg", mp_map({{"dtype", mp(std::string("i16"))},
                          {"shape", mp(std::vector<int>{2, 3})},
                          {"data", bin(std::string(12, '\1'))}})},
          {"fs", mp(250.0)},
          {"leads", mp(std::vector<std::string>{"I", "II"})},
          {"deadline_ms", mp(1500)}};
}

Entries with(Entries e, const std::string& key, const std::string& value) {
  for (auto& [k, v] : e)
    if (k == key) {
      v = value;
      return e;
    }
  e.emplace_back(key, value);
  return e;
}

Entries without(Entries e, const std::string& key) {
  e.erase(std::remove_if(e.begin(), e.end(), [&](const auto& kv) { return kv.first == key; }),
          e.end());
  return e;
}

TEST(PeekJob, ReadsIdAndDeadline) {
  auto env = schema::peek_job(mp_map(valid_entries()));
  ASSERT_TRUE(env.ok()) << env.status().to_string();
  EXPECT_EQ(env->id, "j1");
  EXPECT_EQ(env->deadline_ms, 1500);
  auto no_id = schema::peek_job(mp_map(without(without(valid_entries(), "id"), "deadline_ms")));
  ASSERT_TRUE(no_id.ok());
  EXPECT_EQ(no_id->id, "");
  EXPECT_FALSE(no_id->deadline_ms);
}

TEST(PeekJob, RefusesExactlyWhatDecodeJobRefuses) {
  struct Case {
    std::string body;
    std::string code;
    std::string field;
  };
  const std::vector<Case> cases = {
      {"", "bad_request", ""},
      {"\xc1", "bad_request", ""},
      {mp(std::vector<int>{1}), "bad_request", ""},
      {mp_map(valid_entries()) + "x", "bad_request", ""},
      {mp_map(without(valid_entries(), "v")), "bad_request", "v"},
      {mp_map(with(valid_entries(), "v", mp(2))), "bad_request", "v"},
      {mp_map(without(valid_entries(), "ecg")), "bad_request", "ecg"},
      {mp_map(with(valid_entries(), "id", mp(7))), "bad_request", "id"},
      {mp_map(with(valid_entries(), "ecg",
                   mp_map({{"dtype", mp(std::string("u8"))},
                           {"shape", mp(std::vector<int>{2, 3})},
                           {"data", bin(std::string(6, '\1'))}}))),
       "unsupported_dtype", "ecg.dtype"},
      {mp_map(with(valid_entries(), "ecg",
                   mp_map({{"dtype", mp(std::string("i16"))},
                           {"shape", mp(std::vector<int>{2, 4})},
                           {"data", bin(std::string(12, '\1'))}}))),
       "bad_shape", "ecg.data"},
      {mp_map(with(valid_entries(), "ecg",
                   mp_map({{"dtype", mp(std::string("i16"))},
                           {"shape", mp(std::vector<int>{6})},
                           {"data", bin(std::string(12, '\1'))}}))),
       "bad_shape", "ecg.shape"},
      {mp_map(without(valid_entries(), "fs")), "bad_request", "fs"},
      {mp_map(with(valid_entries(), "fs", mp(-1))), "bad_request", "fs"},
      {mp_map(with(valid_entries(), "leads", mp(std::vector<std::string>{"I"}))), "bad_request",
       "leads"},
      {mp_map(with(valid_entries(), "gain", mp(std::vector<double>{1, 2, 3}))), "bad_request",
       "gain"},
      {mp_map(with(valid_entries(), "gain", mp(0.0))), "bad_request", "gain"},
      {mp_map(with(valid_entries(), "outputs", mp(std::vector<std::string>{"x"}))), "bad_request",
       "outputs"},
      {mp_map(with(valid_entries(), "deadline_ms", mp(-5))), "bad_request", "deadline_ms"},
      {mp_map(with(valid_entries(), "units", mp(3))), "bad_request", "units"},
  };
  for (const auto& c : cases) {
    auto peek = schema::peek_job(c.body);
    auto full = schema::decode_job(c.body);
    ASSERT_FALSE(peek.ok()) << c.code << " " << c.field;
    EXPECT_EQ(peek.status().code(), c.code) << peek.status().to_string();
    EXPECT_EQ(peek.status().field(), c.field) << peek.status().to_string();
    ASSERT_FALSE(full.ok()) << c.code << " " << c.field;
    EXPECT_EQ(full.status().code(), peek.status().code()) << full.status().to_string();
    EXPECT_EQ(full.status().field(), peek.status().field()) << full.status().to_string();
  }
}

TEST(AddDispatch, AppendsDispatchAndAssignedIdThatDecodersSee) {
  const std::string body = mp_map(without(valid_entries(), "id"));
  const std::string out = schema::add_dispatch(body, {3, 12.5}, "b-42");
  auto job = schema::decode_job(out);
  ASSERT_TRUE(job.ok()) << job.status().to_string();
  EXPECT_EQ(job->id, "b-42");
  ASSERT_TRUE(job->dispatch);
  EXPECT_EQ(job->dispatch->attempt, 3);
  EXPECT_DOUBLE_EQ(job->dispatch->queued_ms, 12.5);
  EXPECT_EQ(job->ecg.data, std::string(12, '\1'));
  // The samples are not re-encoded: the original entries follow the new header verbatim.
  EXPECT_NE(out.find(body.substr(1)), std::string::npos);
}

TEST(AddDispatch, LaterKeysWinAndHeadersGrowPast15Entries) {
  Entries e = valid_entries();
  for (int i = 0; i < 9; ++i) e.emplace_back("x" + std::to_string(i), mp(i));  // 15 entries
  e.emplace_back("dispatch", mp_map({{"attempt", mp(9)}, {"queued_ms", mp(1.0)}}));
  ASSERT_EQ(e.size(), 16u);  // map16 header already
  auto job = schema::decode_job(schema::add_dispatch(mp_map(e), {1, 0}));
  ASSERT_TRUE(job.ok()) << job.status().to_string();
  EXPECT_EQ(job->dispatch->attempt, 1);
  EXPECT_EQ(job->id, "j1");
  Entries f = valid_entries();
  for (int i = 0; i < 9; ++i) f.emplace_back("x" + std::to_string(i), mp(i));
  ASSERT_EQ(f.size(), 15u);  // fixmap that must become map16
  job = schema::decode_job(schema::add_dispatch(mp_map(f), {2, 5}, "new"));
  ASSERT_TRUE(job.ok()) << job.status().to_string();
  EXPECT_EQ(job->id, "new");
  EXPECT_EQ(job->dispatch->attempt, 2);
}

TEST(ErrorResult, DecodesAsAnErrorResult) {
  auto r = schema::decode_result(schema::error_result("j9", "queue_full", "full", "", 1200, 0));
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(r->id, "j9");
  EXPECT_EQ(r->status, "error");
  ASSERT_TRUE(r->error);
  EXPECT_EQ(r->error->code, "queue_full");
  EXPECT_EQ(r->error->message, "full");
  EXPECT_EQ(r->error->retry_after_ms, 1200);
  auto s = schema::decode_result(schema::error_result("", "bad_shape", "m", "ecg.data"));
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->error->field, "ecg.data");
  EXPECT_FALSE(s->error->retry_after_ms);
}

}  // namespace
}  // namespace ecgq::test
