// Schema v1 bodies: round trips, the pinned wire format, and every malformed job a producer can
// send (each with its error code and field).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <msgpack.hpp>
#include <utility>
#include <vector>

#include "protocol/schema.hpp"

namespace ecgq::schema {
namespace {

using Entries = std::vector<std::pair<std::string, std::string>>;  // key -> raw msgpack value

template <typename T>
std::string mp(const T& value) {
  msgpack::sbuffer buf;
  msgpack::pack(buf, value);
  return std::string(buf.data(), buf.size());
}

std::string mp_bin(const std::string& bytes) {
  msgpack::sbuffer buf;
  msgpack::packer<msgpack::sbuffer> pk(buf);
  pk.pack_bin(static_cast<uint32_t>(bytes.size()));
  pk.pack_bin_body(bytes.data(), static_cast<uint32_t>(bytes.size()));
  return std::string(buf.data(), buf.size());
}

// A float64 that stays a float (msgpack-c packs integral doubles as integers).
std::string mp_f64(double value) {
  uint64_t bits = 0;
  std::memcpy(&bits, &value, sizeof bits);
  std::string out(1, '\xcb');
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((bits >> (56 - 8 * i)) & 0xff));
  return out;
}

std::string mp_nil() {
  return std::string("\xc0", 1);
}

// A map from raw entries, in order (duplicates allowed: that is the point of some tests).
std::string mp_map(const Entries& entries) {
  msgpack::sbuffer buf;
  msgpack::packer<msgpack::sbuffer> pk(buf);
  pk.pack_map(static_cast<uint32_t>(entries.size()));
  for (const auto& [k, v] : entries) {
    pk.pack(k);
    buf.write(v.data(), v.size());
  }
  return std::string(buf.data(), buf.size());
}

std::string ecg_value(const std::string& dtype, std::vector<int64_t> shape,
                      const std::string& data) {
  return mp_map({{"dtype", mp(dtype)}, {"shape", mp(shape)}, {"data", mp_bin(data)}});
}

// A valid job: 2 leads x 3 samples of f32.
Entries valid_entries() {
  return {{"v", mp(1)},
          {"id", mp(std::string("job-1"))},
          {"ecg", ecg_value("f32", {2, 3}, std::string(24, '\0'))},
          {"fs", mp(500.0)},
          {"leads", mp(std::vector<std::string>{"I", "II"})}};
}

Entries with(Entries e, const std::string& key, const std::string& value) {
  for (auto& kv : e) {
    if (kv.first == key) {
      kv.second = value;
      return e;
    }
  }
  e.emplace_back(key, value);
  return e;
}

Entries without(Entries e, const std::string& key) {
  Entries out;
  for (auto& kv : e)
    if (kv.first != key) out.push_back(kv);
  return out;
}

void expect_error(const std::string& body, const std::string& code, const std::string& field) {
  auto job = decode_job(body);
  ASSERT_FALSE(job.ok()) << "decoded a malformed body";
  EXPECT_EQ(job.status().code(), code) << job.status().to_string();
  EXPECT_EQ(job.status().field(), field) << job.status().to_string();
  EXPECT_FALSE(job.status().message().empty());
}

void expect_job_error(const Entries& e, const std::string& code, const std::string& field) {
  expect_error(mp_map(e), code, field);
}

std::string floats_bytes(const std::vector<float>& v) {
  return std::string(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(float));
}

TEST(Schema, DtypeSizes) {
  EXPECT_EQ(dtype_size("f32"), 4u);
  EXPECT_EQ(dtype_size("f64"), 8u);
  EXPECT_EQ(dtype_size("i16"), 2u);
  EXPECT_EQ(dtype_size("u8"), 0u);
}

TEST(Schema, JobRoundTripAllFields) {
  Job j;
  j.id = "abc-1";
  j.ecg = {"f32", {3, 2}, floats_bytes({1, 2, 3, 4, 5, 6})};
  j.fs = 400;
  j.leads = {"I", "II", "V1"};
  j.gain = {1000, 1000, 200};
  j.baseline = {0.5};
  j.units = "uV";
  j.outputs = {"probs", "embedding"};
  j.deadline_ms = 1500;
  j.meta = mp(std::map<std::string, int>{{"patient", 7}});
  j.dispatch = DispatchInfo{2, 12.5};
  auto d = decode_job(encode_job(j));
  ASSERT_TRUE(d.ok()) << d.status().to_string();
  EXPECT_EQ(d->id, j.id);
  EXPECT_EQ(d->ecg.dtype, "f32");
  EXPECT_EQ(d->ecg.shape, j.ecg.shape);
  EXPECT_EQ(d->ecg.data, j.ecg.data);
  EXPECT_EQ(d->fs, 400);
  EXPECT_EQ(d->leads, j.leads);
  EXPECT_EQ(d->gain, j.gain);
  EXPECT_EQ(d->baseline, j.baseline);
  EXPECT_EQ(d->units, "uV");
  EXPECT_EQ(d->outputs, j.outputs);
  ASSERT_TRUE(d->deadline_ms.has_value());
  EXPECT_EQ(*d->deadline_ms, 1500);
  EXPECT_EQ(d->meta, j.meta);
  ASSERT_TRUE(d->dispatch.has_value());
  EXPECT_EQ(d->dispatch->attempt, 2);
  EXPECT_DOUBLE_EQ(d->dispatch->queued_ms, 12.5);
}

TEST(Schema, JobRoundTripMinimalAndEveryDtype) {
  for (const auto& [dtype, size] :
       {std::pair<std::string, size_t>{"f32", 4}, {"f64", 8}, {"i16", 2}}) {
    Job j;
    j.ecg = {dtype, {12, 5}, std::string(12 * 5 * size, '\x01')};
    j.fs = 500;
    j.leads = std::vector<std::string>(12, "X");
    auto d = decode_job(encode_job(j));
    ASSERT_TRUE(d.ok()) << dtype << ": " << d.status().to_string();
    EXPECT_EQ(d->id, "");
    EXPECT_EQ(d->ecg.dtype, dtype);
    EXPECT_EQ(d->ecg.data, j.ecg.data);
    EXPECT_FALSE(d->deadline_ms.has_value());
    EXPECT_FALSE(d->dispatch.has_value());
    EXPECT_TRUE(d->meta.empty());
  }
}

// The exact bytes of a small job: field names = struct names, ecg = {dtype, shape, data(bin)}.
TEST(Schema, JobWireFormatIsPinned) {
  Job j;
  j.id = "a";
  j.ecg = {"i16", {1, 1}, std::string("\x01\x00", 2)};
  j.fs = 500;
  j.leads = {"I"};
  const char raw[] =
      "\x85"
      "\xa1v\x01"
      "\xa2id\xa1"
      "a"
      "\xa3"
      "ecg\x83"
      "\xa5"
      "dtype\xa3i16"
      "\xa5shape\x92\x01\x01"
      "\xa4"
      "data\xc4\x02\x01\x00"
      "\xa2"
      "fs\xcb\x40\x7f\x40\x00\x00\x00\x00\x00"
      "\xa5leads\x91\xa1I";
  const std::string expected(raw, sizeof(raw) - 1);
  EXPECT_EQ(encode_job(j), expected);
}

// A body packed by hand the way a Python producer would (integer fs, scalar gain, nils).
TEST(Schema, HandPackedJobDecodes) {
  const char raw[] =
      "\x87"
      "\xa1v\x01"
      "\xa3"
      "ecg\x83"
      "\xa4"
      "data\xc4\x04\x01\x00\x02\x00"
      "\xa5"
      "dtype\xa3i16"
      "\xa5shape\x92\x02\x01"
      "\xa2"
      "fs\xcd\x01\xf4"
      "\xa5leads\x92\xa1I\xa2II"
      "\xa4gain\xcb\x40\x8f\x40\x00\x00\x00\x00\x00"
      "\xa8"
      "whatever\xc0"
      "\xa2id\xc0";
  const std::string b(raw, sizeof(raw) - 1);
  auto d = decode_job(b);
  ASSERT_TRUE(d.ok()) << d.status().to_string();
  EXPECT_EQ(d->id, "");
  EXPECT_EQ(d->ecg.shape, (std::vector<int64_t>{2, 1}));
  EXPECT_EQ(d->ecg.data, std::string("\x01\x00\x02\x00", 4));
  EXPECT_EQ(d->fs, 500);
  EXPECT_EQ(d->leads, (std::vector<std::string>{"I", "II"}));
  EXPECT_EQ(d->gain, (std::vector<double>{1000}));
}

TEST(Schema, UnknownKeysAreIgnoredAndLaterKeysWin) {
  auto e = valid_entries();
  e.emplace_back("future_field", mp(std::vector<int>{1, 2, 3}));
  e.emplace_back("id", mp(std::string("assigned-by-broker")));
  e.emplace_back("dispatch", mp_map({{"attempt", mp(3)}, {"queued_ms", mp(4)}}));
  auto d = decode_job(mp_map(e));
  ASSERT_TRUE(d.ok()) << d.status().to_string();
  EXPECT_EQ(d->id, "assigned-by-broker");
  ASSERT_TRUE(d->dispatch.has_value());
  EXPECT_EQ(d->dispatch->attempt, 3);
  EXPECT_EQ(d->dispatch->queued_ms, 4);
  // A later invalid value replaces an earlier valid one, and is reported.
  e.emplace_back("fs", mp(-1.0));
  expect_job_error(e, "bad_request", "fs");
}

TEST(Schema, NilOptionalFieldsReadAsAbsent) {
  auto e = valid_entries();
  for (const char* k :
       {"gain", "baseline", "units", "outputs", "deadline_ms", "meta", "dispatch"}) {
    e = with(e, k, mp_nil());
  }
  e = with(e, "id", mp_nil());
  auto d = decode_job(mp_map(e));
  ASSERT_TRUE(d.ok()) << d.status().to_string();
  EXPECT_TRUE(d->gain.empty());
  EXPECT_FALSE(d->deadline_ms.has_value());
  EXPECT_EQ(d->id, "");
}

TEST(Schema, NotMsgpack) {
  expect_error("", "bad_request", "");
  expect_error(std::string("\xc1", 1), "bad_request", "");            // never-used byte
  expect_error("hello, this is json? {\"v\":1}", "bad_request", "");  // a fixstr then junk
  expect_error(mp_map(valid_entries()) + "x", "bad_request", "");     // trailing bytes
}

TEST(Schema, NotAMap) {
  expect_error(mp(std::vector<int>{1, 2}), "bad_request", "");
  expect_error(mp(std::string("job")), "bad_request", "");
  expect_error(mp(42), "bad_request", "");
  expect_error(mp_nil(), "bad_request", "");
}

TEST(Schema, Truncated) {
  const std::string good = mp_map(valid_entries());
  for (size_t n : {size_t{1}, good.size() / 2, good.size() - 1}) {
    expect_error(good.substr(0, n), "bad_request", "");
  }
  // A bin32 that claims 1000 bytes but carries 10.
  std::string bin("\xc6\x00\x00\x03\xe8", 5);
  bin += std::string(10, '\0');
  std::string truncated = mp_map(valid_entries());
  truncated[0] = static_cast<char>(0x86);
  truncated += mp(std::string("extra")) + bin;
  expect_error(truncated, "bad_request", "");
}

TEST(Schema, HostileHeadersDoNotAllocate) {
  // An array32 claiming 4G elements, and a map32 claiming 4G entries, with nothing behind them.
  expect_error(std::string("\xdd\xff\xff\xff\xff", 5), "bad_request", "");
  expect_error(std::string("\xdf\xff\xff\xff\xff", 5), "bad_request", "");
  // Deep nesting.
  std::string deep(200, '\x91');
  deep += '\x01';
  expect_error(deep, "bad_request", "");
}

TEST(Schema, Version) {
  expect_job_error(without(valid_entries(), "v"), "bad_request", "v");
  expect_job_error(with(valid_entries(), "v", mp(2)), "bad_request", "v");
  expect_job_error(with(valid_entries(), "v", mp(0)), "bad_request", "v");
  expect_job_error(with(valid_entries(), "v", mp(std::string("1"))), "bad_request", "v");
  expect_job_error(with(valid_entries(), "v", mp_f64(1.0)), "bad_request", "v");
}

TEST(Schema, Id) {
  expect_job_error(with(valid_entries(), "id", mp(17)), "bad_request", "id");
}

TEST(Schema, Ecg) {
  expect_job_error(without(valid_entries(), "ecg"), "bad_request", "ecg");
  expect_job_error(with(valid_entries(), "ecg", mp(std::string("data"))), "bad_request", "ecg");
  expect_job_error(with(valid_entries(), "ecg", mp_bin(std::string(24, '\0'))), "bad_request",
                   "ecg");
}

TEST(Schema, EcgDtype) {
  const std::string data(24, '\0');
  expect_job_error(with(valid_entries(), "ecg", ecg_value("u8", {2, 3}, data)), "unsupported_dtype",
                   "ecg.dtype");
  expect_job_error(with(valid_entries(), "ecg", ecg_value("float32", {2, 3}, data)),
                   "unsupported_dtype", "ecg.dtype");
  expect_job_error(with(valid_entries(), "ecg",
                        mp_map({{"shape", mp(std::vector<int>{2, 3})}, {"data", mp_bin(data)}})),
                   "bad_request", "ecg.dtype");
  expect_job_error(
      with(valid_entries(), "ecg",
           mp_map(
               {{"dtype", mp(4)}, {"shape", mp(std::vector<int>{2, 3})}, {"data", mp_bin(data)}})),
      "bad_request", "ecg.dtype");
}

TEST(Schema, EcgShape) {
  const std::string data(24, '\0');
  auto ecg = [&](const std::string& shape) {
    return with(
        valid_entries(), "ecg",
        mp_map({{"dtype", mp(std::string("f32"))}, {"shape", shape}, {"data", mp_bin(data)}}));
  };
  expect_job_error(with(valid_entries(), "ecg",
                        mp_map({{"dtype", mp(std::string("f32"))}, {"data", mp_bin(data)}})),
                   "bad_request", "ecg.shape");
  expect_job_error(ecg(mp(std::string("2x3"))), "bad_request", "ecg.shape");
  expect_job_error(ecg(mp(std::vector<int>{6})), "bad_shape", "ecg.shape");
  expect_job_error(ecg(mp(std::vector<int>{1, 2, 3})), "bad_shape", "ecg.shape");
  expect_job_error(ecg(mp(std::vector<int>{0, 3})), "bad_shape", "ecg.shape");
  expect_job_error(ecg(mp(std::vector<int>{2, -3})), "bad_shape", "ecg.shape");
  expect_job_error(ecg("\x92" + mp_f64(2.0) + mp_f64(3.0)), "bad_request", "ecg.shape");
  // Huge claims whose product would wrap around 64 bits to a small number.
  expect_job_error(ecg(mp(std::vector<int64_t>{int64_t{1} << 62, 4})), "bad_shape", "ecg.shape");
  expect_job_error(ecg(mp(std::vector<uint64_t>{std::numeric_limits<uint64_t>::max(), 1})),
                   "bad_shape", "ecg.shape");
  expect_job_error(ecg(mp(std::vector<int64_t>{12, int64_t{1} << 40})), "bad_shape", "ecg.shape");
}

TEST(Schema, EcgData) {
  auto ecg = [&](const std::string& data) {
    return with(valid_entries(), "ecg",
                mp_map({{"dtype", mp(std::string("f32"))},
                        {"shape", mp(std::vector<int>{2, 3})},
                        {"data", data}}));
  };
  expect_job_error(
      with(valid_entries(), "ecg",
           mp_map({{"dtype", mp(std::string("f32"))}, {"shape", mp(std::vector<int>{2, 3})}})),
      "bad_request", "ecg.data");
  expect_job_error(ecg(mp(std::string(24, 'a'))), "bad_request", "ecg.data");  // str, not bin
  expect_job_error(ecg(mp(std::vector<float>(6, 0.f))), "bad_request", "ecg.data");
  expect_job_error(ecg(mp_bin(std::string(23, '\0'))), "bad_shape", "ecg.data");
  expect_job_error(ecg(mp_bin(std::string(25, '\0'))), "bad_shape", "ecg.data");
  expect_job_error(ecg(mp_bin("")), "bad_shape", "ecg.data");
  // i16 data sized for f32 is wrong too.
  expect_job_error(with(valid_entries(), "ecg", ecg_value("i16", {2, 3}, std::string(24, '\0'))),
                   "bad_shape", "ecg.data");
}

TEST(Schema, Fs) {
  expect_job_error(without(valid_entries(), "fs"), "bad_request", "fs");
  expect_job_error(with(valid_entries(), "fs", mp(std::string("500"))), "bad_request", "fs");
  expect_job_error(with(valid_entries(), "fs", mp_nil()), "bad_request", "fs");
  expect_job_error(with(valid_entries(), "fs", mp(0)), "bad_request", "fs");
  expect_job_error(with(valid_entries(), "fs", mp(-500.0)), "bad_request", "fs");
  expect_job_error(with(valid_entries(), "fs", mp(std::nan(""))), "bad_request", "fs");
  expect_job_error(with(valid_entries(), "fs", mp(std::numeric_limits<double>::infinity())),
                   "bad_request", "fs");
  auto d = decode_job(mp_map(with(valid_entries(), "fs", mp(250))));  // integers are fine
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->fs, 250);
}

TEST(Schema, Leads) {
  expect_job_error(without(valid_entries(), "leads"), "bad_request", "leads");
  expect_job_error(with(valid_entries(), "leads", mp(std::string("I,II"))), "bad_request", "leads");
  expect_job_error(with(valid_entries(), "leads", mp(std::vector<std::string>{"I"})), "bad_request",
                   "leads");
  expect_job_error(with(valid_entries(), "leads", mp(std::vector<std::string>{"I", "II", "III"})),
                   "bad_request", "leads");
  expect_job_error(with(valid_entries(), "leads", mp(std::vector<int>{1, 2})), "bad_request",
                   "leads");
}

TEST(Schema, GainAndBaseline) {
  for (const char* k : {"gain", "baseline"}) {
    SCOPED_TRACE(k);
    for (const auto& ok : {mp(std::vector<double>{}), mp(2.0), mp(std::vector<double>{2.0}),
                           mp(std::vector<double>{2.0, 3.0})}) {
      auto d = decode_job(mp_map(with(valid_entries(), k, ok)));
      EXPECT_TRUE(d.ok()) << d.status().to_string();
    }
    expect_job_error(with(valid_entries(), k, mp(std::vector<double>{1, 2, 3})), "bad_request", k);
    expect_job_error(with(valid_entries(), k, mp(std::string("1000"))), "bad_request", k);
    expect_job_error(with(valid_entries(), k, mp(std::vector<std::string>{"a", "b"})),
                     "bad_request", k);
    expect_job_error(with(valid_entries(), k, mp(std::vector<double>{1, std::nan("")})),
                     "bad_request", k);
  }
  expect_job_error(with(valid_entries(), "gain", mp(std::vector<double>{0})), "bad_request",
                   "gain");
}

TEST(Schema, UnitsOutputsDeadlineDispatch) {
  expect_job_error(with(valid_entries(), "units", mp(5)), "bad_request", "units");
  expect_job_error(with(valid_entries(), "outputs", mp(std::string("probs"))), "bad_request",
                   "outputs");
  expect_job_error(
      with(valid_entries(), "outputs", mp(std::vector<std::string>{"probs", "attention"})),
      "bad_request", "outputs");
  expect_job_error(with(valid_entries(), "outputs", mp(std::vector<int>{1})), "bad_request",
                   "outputs");
  for (const auto& name : kOutputNames) {
    auto d =
        decode_job(mp_map(with(valid_entries(), "outputs", mp(std::vector<std::string>{name}))));
    EXPECT_TRUE(d.ok()) << name;
  }
  expect_job_error(with(valid_entries(), "deadline_ms", mp(-1)), "bad_request", "deadline_ms");
  expect_job_error(with(valid_entries(), "deadline_ms", mp(1.5)), "bad_request", "deadline_ms");
  expect_job_error(with(valid_entries(), "deadline_ms", mp(std::string("1s"))), "bad_request",
                   "deadline_ms");
  // 0 means no deadline; beyond 30 days a clock would overflow.
  auto d = decode_job(mp_map(with(valid_entries(), "deadline_ms", mp(0))));
  ASSERT_TRUE(d.ok());
  EXPECT_FALSE(d->deadline_ms);
  expect_job_error(with(valid_entries(), "deadline_ms", mp(kMaxJobBudgetMs + 1)), "bad_request",
                   "deadline_ms");
  expect_job_error(with(valid_entries(), "wait_for_worker_ms", mp(-5)), "bad_request",
                   "wait_for_worker_ms");
  d = decode_job(mp_map(with(valid_entries(), "wait_for_worker_ms", mp(1500))));
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->wait_for_worker_ms.value_or(-1), 1500);
  expect_job_error(with(valid_entries(), "dispatch", mp(1)), "bad_request", "dispatch");
  expect_job_error(with(valid_entries(), "dispatch", mp_map({{"attempt", mp(std::string("2"))}})),
                   "bad_request", "dispatch.attempt");
}

Result sample_result() {
  Result r;
  r.id = "c-1";
  r.labels = {"AF", "SR", "LBBB"};
  r.probs = {0.25f, 0.5f, 0.125f};
  r.logits = {-1.f, 0.f, -2.f};
  r.embedding = {0.1f, 0.2f};
  r.segment_probs = TypedArray{"f32", {2, 3}, floats_bytes({1, 2, 3, 4, 5, 6})};
  r.n_segments = 2;
  r.derived_leads = {"III", "aVR"};
  r.ignored_channels = {"Pleth (unknown lead)"};
  r.model = {"ecgfm", "/models/x.pt", std::string(64, 'a'), "fp32", {}, {}};
  r.worker_id = "w-1";
  r.attempts = 2;
  r.cold_start = true;
  r.cached = true;
  r.batch_segments = 6;
  r.batch_jobs = 3;
  r.timings = {1, 2, 3, 4, 5, 6, 21};
  r.meta = mp(std::vector<std::string>{"m"});
  return r;
}

TEST(Schema, ResultRoundTrip) {
  const Result r = sample_result();
  auto d = decode_result(encode_result(r));
  ASSERT_TRUE(d.ok()) << d.status().to_string();
  EXPECT_EQ(d->id, "c-1");
  EXPECT_EQ(d->status, "ok");
  EXPECT_FALSE(d->error.has_value());
  EXPECT_EQ(d->labels, r.labels);
  EXPECT_EQ(d->probs, r.probs);
  EXPECT_EQ(d->logits, r.logits);
  EXPECT_EQ(d->embedding, r.embedding);
  ASSERT_TRUE(d->segment_probs.has_value());
  EXPECT_EQ(d->segment_probs->shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(d->segment_probs->data, r.segment_probs->data);
  EXPECT_FALSE(d->saliency.has_value());
  EXPECT_EQ(d->n_segments, 2);
  EXPECT_EQ(d->derived_leads, r.derived_leads);
  EXPECT_EQ(d->ignored_channels, r.ignored_channels);
  EXPECT_EQ(d->model.kind, "ecgfm");
  EXPECT_EQ(d->model.sha256, r.model.sha256);
  EXPECT_EQ(d->model.precision, "fp32");
  EXPECT_EQ(d->worker_id, "w-1");
  EXPECT_EQ(d->attempts, 2);
  EXPECT_TRUE(d->cold_start);
  EXPECT_TRUE(d->cached);
  EXPECT_EQ(d->batch_segments, 6);
  EXPECT_EQ(d->batch_jobs, 3);
  EXPECT_EQ(d->timings.total_ms, 21);
  EXPECT_EQ(d->timings.load_ms, 4);
  EXPECT_EQ(d->meta, r.meta);
}

// probs/logits are maps label -> value when labels are known, arrays otherwise.
TEST(Schema, ResultProbsAreLabelledMaps) {
  const std::string body = encode_result(sample_result());
  msgpack::object_handle oh = msgpack::unpack(body.data(), body.size());
  auto root = oh.get().as<std::map<std::string, msgpack::object>>();
  ASSERT_EQ(root.at("probs").type, msgpack::type::MAP);
  auto probs = root.at("probs").as<std::map<std::string, float>>();
  EXPECT_EQ(probs.at("SR"), 0.5f);
  // Values stay float32 on the wire even when integral (Python sees floats, not ints).
  Result integral = sample_result();
  integral.probs = {0.f, 1.f, 0.f};
  const std::string b1 = encode_result(integral);
  msgpack::object_handle oh1 = msgpack::unpack(b1.data(), b1.size());
  auto probs1 = oh1.get().as<std::map<std::string, msgpack::object>>().at("probs");
  EXPECT_EQ(probs1.via.map.ptr[1].val.type, msgpack::type::FLOAT32);
  EXPECT_EQ(root.at("logits").type, msgpack::type::MAP);
  EXPECT_EQ(root.at("embedding").type, msgpack::type::ARRAY);
  EXPECT_EQ(root.at("v").as<int>(), 1);

  Result unlabelled = sample_result();
  unlabelled.labels.clear();
  const std::string b2 = encode_result(unlabelled);
  msgpack::object_handle oh2 = msgpack::unpack(b2.data(), b2.size());
  auto root2 = oh2.get().as<std::map<std::string, msgpack::object>>();
  EXPECT_EQ(root2.at("probs").type, msgpack::type::ARRAY);
  auto d = decode_result(b2);
  ASSERT_TRUE(d.ok());
  EXPECT_TRUE(d->labels.empty());
  EXPECT_EQ(d->probs, unlabelled.probs);
}

// A map without a labels list still gives labels, in wire order.
TEST(Schema, ResultLabelsFromProbsMap) {
  const std::string body = mp_map({{"v", mp(1)},
                                   {"id", mp(std::string("x"))},
                                   {"status", mp(std::string("ok"))},
                                   {"probs", mp_map({{"B", mp(0.5)}, {"A", mp(0.25)}})}});
  auto d = decode_result(body);
  ASSERT_TRUE(d.ok()) << d.status().to_string();
  EXPECT_EQ(d->labels, (std::vector<std::string>{"B", "A"}));
  EXPECT_EQ(d->probs, (std::vector<float>{0.5f, 0.25f}));
}

TEST(Schema, ErrorResultRoundTrip) {
  Result r;
  r.id = "j";
  r.status = "error";
  r.error = ErrorInfo{"queue_full", "queue ecg-fm is full (1000 jobs)", "", 250};
  r.attempts = 0;
  auto d = decode_result(encode_result(r));
  ASSERT_TRUE(d.ok()) << d.status().to_string();
  EXPECT_EQ(d->status, "error");
  ASSERT_TRUE(d->error.has_value());
  EXPECT_EQ(d->error->code, "queue_full");
  EXPECT_EQ(d->error->message, r.error->message);
  EXPECT_EQ(d->error->retry_after_ms.value_or(-1), 250);
  EXPECT_TRUE(d->probs.empty());
}

TEST(Schema, MalformedResults) {
  for (const std::string& body :
       {std::string(), std::string("\xc1", 1), mp(std::vector<int>{1}),
        mp_map({{"id", mp(std::string("x"))}}),                     // no status
        mp_map({{"status", mp(std::string("maybe"))}}),             // bad status
        mp_map({{"status", mp(std::string("error"))}}),             // no error
        mp_map({{"status", mp(std::string("ok"))}, {"v", mp(9)}}),  // version
        mp_map({{"status", mp(std::string("ok"))}, {"probs", mp(std::string("x"))}}),
        mp_map({{"status", mp(std::string("ok"))}, {"attempts", mp(std::string("2"))}}),
        mp_map({{"status", mp(std::string("error"))},
                {"error", mp_map({{"message", mp(std::string("m"))}})}})}) {
    auto d = decode_result(body);
    EXPECT_FALSE(d.ok());
    if (!d.ok()) {
      EXPECT_EQ(d.status().code(), "bad_result");
    }
  }
}

TEST(Schema, ProgressRoundTrip) {
  Progress queued{"j-1", "queued", 7, ""};
  auto d = decode_progress(encode_progress(queued));
  ASSERT_TRUE(d.ok()) << d.status().to_string();
  EXPECT_EQ(d->id, "j-1");
  EXPECT_EQ(d->event, "queued");
  EXPECT_EQ(d->position, 7);
  EXPECT_EQ(d->worker_id, "");
  Progress running{"j-2", "running", -1, "w-3"};
  d = decode_progress(encode_progress(running));
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->event, "running");
  EXPECT_EQ(d->position, -1);
  EXPECT_EQ(d->worker_id, "w-3");
  EXPECT_FALSE(decode_progress(mp_map({{"id", mp(std::string("x"))}})).ok());
  EXPECT_FALSE(decode_progress("junk").ok());
}

}  // namespace
}  // namespace ecgq::schema
