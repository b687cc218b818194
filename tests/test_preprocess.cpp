// ECG-FM preprocessing against the upstream vectors in tests/data/ecgfm and hand-checked cases.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "protocol/decoded_job.hpp"
#include "records/lead_names.hpp"
#include "records/npy.hpp"
#include "records/preprocess.hpp"
#include "records/units.hpp"
#include "tests/support/process.hpp"

namespace ecgq {
namespace {

RawEcg make_raw(int64_t n_samples, double fs, std::vector<std::string> leads,
                const std::function<double(int64_t, int64_t)>& value) {
  RawEcg raw;
  raw.n_leads = static_cast<int64_t>(leads.size());
  raw.n_samples = n_samples;
  raw.fs = fs;
  raw.leads = std::move(leads);
  raw.samples.resize(static_cast<size_t>(raw.n_leads * n_samples));
  for (int64_t l = 0; l < raw.n_leads; ++l)
    for (int64_t t = 0; t < n_samples; ++t) raw.samples[l * n_samples + t] = value(l, t);
  return raw;
}

// A smooth, lead-dependent test signal.
double wave(int64_t l, int64_t t) {
  return std::sin(0.01 * t * (l + 1)) + 0.1 * l + 0.001 * t;
}

RawEcg code15_raw() {
  auto arr = read_npy(test::data_path("ecgfm/preproc__raw_code15_1594286_400hz.npy"));
  EXPECT_TRUE(arr.ok()) << arr.status().to_string();
  RawEcg raw;
  raw.n_leads = arr->shape[0];
  raw.n_samples = arr->shape[1];
  raw.fs = 400;
  raw.leads = kModelLeads;
  raw.samples = arr->to_double();
  return raw;
}

// The raw vector is stored as float32, while upstream computed the expected output from the
// float64 original (ecgfm/README.md), so the float32 rounding of the input (relative 6e-8) bounds
// the agreement: numpy itself run on the float32 file differs from the expected output by 3.0e-8.
TEST(Preprocess, MatchesUpstream500HzStage) {
  RawEcg raw = code15_raw();
  auto expected = read_npy(test::data_path("ecgfm/preproc__expected_preprocessed_500hz.npy"));
  ASSERT_TRUE(expected.ok());
  ASSERT_EQ(expected->shape, (std::vector<int64_t>{12, 5120}));
  auto z = standardized_500hz(raw, PreprocessLimits{});
  ASSERT_TRUE(z.ok()) << z.status().to_string();
  std::vector<double> want = expected->to_double();
  ASSERT_EQ(z->size(), want.size());
  double worst = 0;
  for (size_t i = 0; i < want.size(); ++i) worst = std::max(worst, std::abs((*z)[i] - want[i]));
  EXPECT_LT(worst, 5e-8);
}

TEST(Preprocess, MatchesUpstreamSegments) {
  RawEcg raw = code15_raw();
  auto expected = read_npy(test::data_path("ecgfm/preproc__expected_segments.npy"));
  ASSERT_TRUE(expected.ok());
  ASSERT_EQ(expected->shape, (std::vector<int64_t>{2, 12, 2500}));
  auto p = preprocess_ecg(raw, PreprocessLimits{});
  ASSERT_TRUE(p.ok()) << p.status().to_string();
  EXPECT_EQ(p->n_segments, 2);
  EXPECT_TRUE(p->derived_leads.empty());
  EXPECT_TRUE(p->ignored_channels.empty());
  std::vector<float> want = expected->to_float();
  ASSERT_EQ(p->segments.size(), want.size());
  double worst = 0;
  for (size_t i = 0; i < want.size(); ++i)
    worst = std::max(worst, static_cast<double>(std::abs(p->segments[i] - want[i])));
  EXPECT_LT(worst, 1e-6);
}

TEST(Preprocess, SegmentZeroIsTheModelInputRow) {
  auto input = read_npy(test::data_path("ecgfm/input.npy"));
  ASSERT_TRUE(input.ok());
  auto p = preprocess_ecg(code15_raw(), PreprocessLimits{});
  ASSERT_TRUE(p.ok());
  std::vector<float> in = input->to_float();
  double worst = 0;
  for (size_t i = 0; i < 12 * 2500; ++i)
    worst = std::max(worst, static_cast<double>(std::abs(p->segments[i] - in[12 * 2500 + i])));
  EXPECT_LT(worst, 1e-6);
}

// Upstream standardisation by hand for a 500 Hz record (resampling is the identity).
TEST(Preprocess, IdentityAt500HzThenZScore) {
  RawEcg raw = make_raw(5000, 500, kModelLeads, wave);
  auto z = standardized_500hz(raw, PreprocessLimits{});
  ASSERT_TRUE(z.ok());
  ASSERT_EQ(z->size(), 12u * 5000);
  for (int64_t l = 0; l < 12; ++l) {
    double mean = 0, var = 0;
    for (int64_t t = 0; t < 5000; ++t) mean += wave(l, t);
    mean /= 5000;
    for (int64_t t = 0; t < 5000; ++t) var += (wave(l, t) - mean) * (wave(l, t) - mean);
    const double sd = std::sqrt(var / 5000);
    for (int64_t t = 0; t < 5000; t += 97)
      ASSERT_NEAR((*z)[l * 5000 + t], (wave(l, t) - mean) / sd, 1e-12) << "lead " << l;
  }
  auto p = preprocess_ecg(raw, PreprocessLimits{});
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->n_segments, 2);
  EXPECT_EQ(p->segments.size(), 2u * 12 * 2500);
}

// A linear ramp stays a linear ramp under linear interpolation, whatever the rate; its z-score is
// known in closed form, so this checks N' = int(N * (500 / fs)) and the grid for odd rates.
void expect_ramp(int64_t n, double fs) {
  RawEcg raw = make_raw(n, fs, kModelLeads, [](int64_t l, int64_t t) { return 3.0 * t - l; });
  auto z = standardized_500hz(raw, PreprocessLimits{});
  ASSERT_TRUE(z.ok()) << z.status().to_string();
  const int64_t n_out = static_cast<int64_t>(static_cast<double>(n) * (500.0 / fs));
  ASSERT_EQ(static_cast<int64_t>(z->size()), 12 * n_out) << "fs " << fs;
  // A ramp 0..N'-1 standardised: (t - (N'-1)/2) / sqrt((N'^2 - 1) / 12).
  const double sd = std::sqrt((static_cast<double>(n_out) * n_out - 1) / 12.0);
  for (int64_t l = 0; l < 12; ++l)
    for (int64_t t = 0; t < n_out; t += 37)
      ASSERT_NEAR((*z)[l * n_out + t], (t - (n_out - 1) / 2.0) / sd, 1e-9) << "fs " << fs;
}

TEST(Preprocess, ResamplesNonIntegerRates) {
  expect_ramp(2573, 257.3);  // 2573 * (500 / 257.3) = 4999.99.. -> 4999
  expect_ramp(4096, 400);
  expect_ramp(36000, 360);
  expect_ramp(10000, 1000);
}

TEST(Preprocess, UpsamplesFrom100Hz) {
  expect_ramp(1000, 100);
  // Interior points of a 100 -> 500 Hz upsampling lie on the segments between source samples:
  // xp = linspace(0, 4999, 1000), so source sample j sits at j * 4999 / 999.
  RawEcg raw = make_raw(1000, 100, kModelLeads, [](int64_t l, int64_t t) { return (t % 2) * 1.0; });
  auto z = standardized_500hz(raw, PreprocessLimits{});
  ASSERT_TRUE(z.ok());
  const double step = 4999.0 / 999.0;
  std::vector<double> y(5000);
  for (int64_t t = 0; t < 5000; ++t) {
    const int64_t j = std::min<int64_t>(static_cast<int64_t>(t / step), 998);
    const double frac = (t - j * step) / step;
    y[t] = (j % 2) + ((j + 1) % 2 - (j % 2)) * frac;
  }
  double mean = 0, var = 0;
  for (double v : y) mean += v;
  mean /= 5000;
  for (double v : y) var += (v - mean) * (v - mean);
  const double sd = std::sqrt(var / 5000);
  for (int64_t t = 0; t < 5000; ++t) ASSERT_NEAR((*z)[t], (y[t] - mean) / sd, 1e-9) << t;
}

TEST(Preprocess, TooShortNamesTheDuration) {
  RawEcg raw = make_raw(1200, 250, kModelLeads, wave);  // 4.8 s
  auto p = preprocess_ecg(raw, PreprocessLimits{});
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.status().code(), "too_short");
  EXPECT_NE(p.status().message().find("4.8 s"), std::string::npos) << p.status().message();
  // Exactly 5 s is enough; 4999 samples at 500 Hz is not.
  EXPECT_TRUE(preprocess_ecg(make_raw(2500, 500, kModelLeads, wave), {}).ok());
  EXPECT_EQ(preprocess_ecg(make_raw(2499, 500, kModelLeads, wave), {}).status().code(),
            "too_short");
  EXPECT_EQ(preprocess_ecg(make_raw(1, 500, kModelLeads, wave), {}).status().code(), "too_short");
  // 7.4 s -> one segment, remainder dropped.
  auto one = preprocess_ecg(make_raw(3700, 500, kModelLeads, wave), {});
  ASSERT_TRUE(one.ok());
  EXPECT_EQ(one->n_segments, 1);
}

TEST(Preprocess, TooLong) {
  PreprocessLimits limits;
  limits.max_record_seconds = 20;
  auto p = preprocess_ecg(make_raw(10001, 500, kModelLeads, wave), limits);
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.status().code(), "too_long");
  EXPECT_NE(p.status().message().find("20 s"), std::string::npos) << p.status().message();
  EXPECT_TRUE(preprocess_ecg(make_raw(10000, 500, kModelLeads, wave), limits).ok());
}

TEST(Preprocess, ConstantLeadBecomesZeros) {
  RawEcg raw = make_raw(5000, 500, kModelLeads,
                        [](int64_t l, int64_t t) { return l == 7 ? 2.5 : wave(l, t); });
  auto p = preprocess_ecg(raw, {});
  ASSERT_TRUE(p.ok());
  for (int64_t s = 0; s < 2; ++s)
    for (int64_t t = 0; t < 2500; ++t) ASSERT_EQ(p->segments[(s * 12 + 7) * 2500 + t], 0.0f);
}

TEST(Preprocess, MapsNamesCaseInsensitivelyAndReorders) {
  // Reversed, lowercase PTB-XL style names plus a Frank lead and a duplicate.
  std::vector<std::string> names = {"V6",  "v5",  "V4", "v3", "V2", "v1", "AVF",  "avl",
                                    "AVR", "iii", "II", "i",  "vx", "II", "Pleth"};
  RawEcg raw = make_raw(5000, 500, names, [](int64_t l, int64_t t) { return wave(l, t); });
  auto p = preprocess_ecg(raw, {});
  ASSERT_TRUE(p.ok()) << p.status().to_string();
  RawEcg ordered =
      make_raw(5000, 500, kModelLeads, [](int64_t l, int64_t t) { return wave(11 - l, t); });
  auto q = preprocess_ecg(ordered, {});
  ASSERT_TRUE(q.ok());
  EXPECT_EQ(p->segments, q->segments);
  ASSERT_EQ(p->ignored_channels.size(), 3u);
  EXPECT_EQ(p->ignored_channels[0].rfind("vx: Frank", 0), 0u) << p->ignored_channels[0];
  EXPECT_EQ(p->ignored_channels[1].rfind("II: duplicate of lead II", 0), 0u)
      << p->ignored_channels[1];
  EXPECT_EQ(p->ignored_channels[2], "Pleth: not an ECG signal");
}

TEST(Preprocess, LeadAliases) {
  EXPECT_EQ(model_lead_index("aVR"), 3);
  EXPECT_EQ(model_lead_index("AVR"), 3);
  EXPECT_EQ(model_lead_index(" avf "), 5);
  EXPECT_EQ(model_lead_index("D1"), 0);
  EXPECT_EQ(model_lead_index("DIII"), 2);
  EXPECT_EQ(model_lead_index("C4"), 9);
  EXPECT_EQ(model_lead_index("Lead II"), 1);
  EXPECT_EQ(model_lead_index("lead_v1"), 6);
  EXPECT_EQ(model_lead_index("MLII"), -1);
  EXPECT_EQ(model_lead_index("V"), -1);
  EXPECT_EQ(model_lead_index("V7"), -1);
  EXPECT_EQ(model_lead_index("ECG"), -1);
  EXPECT_EQ(model_lead_index("vz"), -1);
}

TEST(Preprocess, DerivesLimbLeadsFromIAndII) {
  // Full 12-lead record whose limb leads obey Einthoven/Goldberger exactly.
  auto limb = [](int64_t l, int64_t t) {
    const double I = std::sin(0.013 * t), II = std::cos(0.007 * t) + 0.2;
    switch (l) {
      case 0:
        return I;
      case 1:
        return II;
      case 2:
        return II - I;
      case 3:
        return -(I + II) / 2;
      case 4:
        return I - II / 2;
      case 5:
        return II - I / 2;
      default:
        return wave(l, t);
    }
  };
  RawEcg full = make_raw(5000, 500, kModelLeads, limb);
  auto want = preprocess_ecg(full, {});
  ASSERT_TRUE(want.ok());
  std::vector<std::string> eight = {"I", "II", "V1", "V2", "V3", "V4", "V5", "V6"};
  RawEcg partial =
      make_raw(5000, 500, eight, [&](int64_t l, int64_t t) { return limb(l < 2 ? l : l + 4, t); });
  auto got = preprocess_ecg(partial, {});
  ASSERT_TRUE(got.ok()) << got.status().to_string();
  EXPECT_EQ(got->derived_leads, (std::vector<std::string>{"III", "aVR", "aVL", "aVF"}));
  double worst = 0;
  for (size_t i = 0; i < want->segments.size(); ++i)
    worst = std::max(worst, static_cast<double>(std::abs(want->segments[i] - got->segments[i])));
  EXPECT_LT(worst, 1e-5);
  // II and III also give I.
  std::vector<std::string> names = {"II", "III", "V1", "V2", "V3", "V4", "V5", "V6"};
  RawEcg from23 = make_raw(5000, 500, names,
                           [&](int64_t l, int64_t t) { return limb(l < 2 ? l + 1 : l + 4, t); });
  auto got23 = preprocess_ecg(from23, {});
  ASSERT_TRUE(got23.ok()) << got23.status().to_string();
  EXPECT_EQ(got23->derived_leads, (std::vector<std::string>{"I", "aVR", "aVL", "aVF"}));
}

TEST(Preprocess, MissingLeadsAreNamed) {
  RawEcg raw = make_raw(5000, 500, {"I", "II", "V1", "V2", "V4", "V6", "PLETH"}, wave);
  auto p = preprocess_ecg(raw, {});
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.status().code(), "missing_leads");
  EXPECT_EQ(p.status().field(), "leads");
  EXPECT_NE(p.status().message().find("missing leads V3, V5"), std::string::npos)
      << p.status().message();
  RawEcg mlii = make_raw(5000, 360, {"MLII", "V1"}, wave);
  auto q = preprocess_ecg(mlii, {});
  ASSERT_FALSE(q.ok());
  EXPECT_NE(q.status().message().find("I, II, III, aVR, aVL, aVF, V2, V3, V4, V5, V6"),
            std::string::npos)
      << q.status().message();
}

TEST(Preprocess, ZeroMissingLeadsMasksWhatCannotBeDerived) {
  // A Holter pair: modified lead II and V5.
  RawEcg holter = make_raw(5000, 500, {"II", "V5"}, wave);
  holter.zero_missing_leads = true;
  auto p = preprocess_ecg(holter, {});
  ASSERT_TRUE(p.ok()) << p.status().to_string();
  EXPECT_EQ(p->masked_leads, (std::vector<std::string>{"I", "III", "aVR", "aVL", "aVF", "V1", "V2",
                                                       "V3", "V4", "V6"}));
  EXPECT_TRUE(p->derived_leads.empty());
  ASSERT_EQ(p->n_segments, 2);
  for (int64_t s = 0; s < 2; ++s)
    for (int lead = 0; lead < 12; ++lead) {
      const float* row = p->segments.data() + (s * 12 + lead) * 2500;
      const bool zero = std::all_of(row, row + 2500, [](float x) { return x == 0.0f; });
      EXPECT_EQ(zero, lead != 1 && lead != 10) << kModelLeads[lead];
    }
  // I and II: the limb leads are derived, only the chest leads are masked.
  RawEcg limbs = make_raw(5000, 500, {"I", "II"}, wave);
  limbs.zero_missing_leads = true;
  auto q = preprocess_ecg(limbs, {});
  ASSERT_TRUE(q.ok());
  EXPECT_EQ(q->derived_leads, (std::vector<std::string>{"III", "aVR", "aVL", "aVF"}));
  EXPECT_EQ(q->masked_leads, (std::vector<std::string>{"V1", "V2", "V3", "V4", "V5", "V6"}));
  // Nothing the model knows: still refused.
  RawEcg none = make_raw(5000, 500, {"PLETH"}, wave);
  none.zero_missing_leads = true;
  auto r = preprocess_ecg(none, {});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), "missing_leads");
}

TEST(Preprocess, NaNIsBadSamplesWithLeadAndIndex) {
  RawEcg raw = make_raw(5000, 500, kModelLeads, wave);
  raw.samples[4 * 5000 + 1234] = std::nan("");
  auto p = preprocess_ecg(raw, {});
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.status().code(), "bad_samples");
  EXPECT_NE(p.status().message().find("aVL"), std::string::npos) << p.status().message();
  EXPECT_NE(p.status().message().find("1234"), std::string::npos) << p.status().message();
}

schema::Job job_i16(std::vector<int16_t> values, int64_t leads, int64_t samples) {
  schema::Job job;
  job.ecg.dtype = "i16";
  job.ecg.shape = {leads, samples};
  job.ecg.data.assign(reinterpret_cast<const char*>(values.data()), values.size() * 2);
  job.fs = 500;
  for (int64_t l = 0; l < leads; ++l) job.leads.push_back(kModelLeads[l]);
  return job;
}

TEST(RawFromJob, AppliesGainBaselineAndUnits) {
  schema::Job job = job_i16({100, 300, -100, 0, 50, 150}, 2, 3);
  job.gain = {200, 100};
  job.baseline = {100};
  auto raw = raw_from_job(job);
  ASSERT_TRUE(raw.ok()) << raw.status().to_string();
  EXPECT_EQ(raw->samples, (std::vector<double>{0, 1, -1, -1, -0.5, 0.5}));
  job.units = "uV";
  raw = raw_from_job(job);
  ASSERT_TRUE(raw.ok());
  EXPECT_DOUBLE_EQ(raw->samples[1], 1e-3);
}

// The job's units and the record readers share one table (records/units.hpp): every voltage a
// record may be written in is accepted in a job too.
TEST(RawFromJob, AcceptsEveryVoltageUnitOfTheTable) {
  schema::Job job = job_i16({1000, 2000}, 1, 2);
  for (const auto& [units, mv] : std::vector<std::pair<std::string, double>>{{"", 1000},
                                                                             {"mV", 1000},
                                                                             {"MV", 1000},
                                                                             {"uV", 1},
                                                                             {"\xc2\xb5V", 1},
                                                                             {"V", 1e6},
                                                                             {"nV", 1e-3}}) {
    job.units = units;
    auto raw = raw_from_job(job);
    ASSERT_TRUE(raw.ok()) << units << ": " << raw.status().to_string();
    EXPECT_DOUBLE_EQ(raw->samples[0], mv) << units;
    EXPECT_DOUBLE_EQ(millivolts_per_unit(units) * 1000, mv) << units;
  }
  EXPECT_TRUE(std::isnan(millivolts_per_unit("NU")));
}

TEST(RawFromJob, RejectsBadFieldsByName) {
  schema::Job job = job_i16({1, 2, 3, 4}, 2, 2);
  job.gain = {0};
  EXPECT_EQ(raw_from_job(job).status().field(), "gain");
  job.gain = {1, 2, 3};
  EXPECT_EQ(raw_from_job(job).status().field(), "gain");
  EXPECT_EQ(raw_from_job(job).status().code(), "bad_shape");
  job.gain = {};
  job.baseline = {1, 2, 3};
  EXPECT_EQ(raw_from_job(job).status().field(), "baseline");
  job.baseline = {};
  job.units = "furlongs";
  EXPECT_EQ(raw_from_job(job).status().field(), "units");
  job.units = "";
  job.fs = 0;
  EXPECT_EQ(raw_from_job(job).status().field(), "fs");
  job.fs = 500;
  job.leads.pop_back();
  EXPECT_EQ(raw_from_job(job).status().code(), "bad_request");
  EXPECT_EQ(raw_from_job(job).status().field(), "leads");
  job = job_i16({1, 2, 3, 4}, 2, 2);
  job.ecg.dtype = "i32";
  EXPECT_EQ(raw_from_job(job).status().code(), "unsupported_dtype");
  job = job_i16({1, 2, 3, 4}, 2, 2);
  job.ecg.data.pop_back();
  EXPECT_EQ(raw_from_job(job).status().code(), "bad_shape");
}

TEST(RawFromJob, NaNInFloatData) {
  schema::Job job;
  job.ecg.dtype = "f32";
  job.ecg.shape = {2, 3};
  std::vector<float> v = {0, 1, 2, 3, INFINITY, 5};
  job.ecg.data.assign(reinterpret_cast<const char*>(v.data()), v.size() * 4);
  job.fs = 500;
  job.leads = {"I", "II"};
  auto raw = raw_from_job(job);
  ASSERT_FALSE(raw.ok());
  EXPECT_EQ(raw.status().code(), "bad_samples");
  EXPECT_NE(raw.status().message().find("lead II sample 1 is infinite"), std::string::npos)
      << raw.status().message();
}

TEST(RawFromJob, ADecodedJobConvertsLikeAJobBuiltInMemory) {
  schema::Job job = job_i16({100, 300, -100, 0, 50, 150}, 2, 3);
  job.gain = {200, 100};
  job.baseline = {100};
  job.units = "uV";
  auto decoded = schema::DecodedJob::decode(schema::encode_job(job));
  ASSERT_TRUE(decoded.ok()) << decoded.status().to_string();
  auto from_decoded = raw_from_job(decoded.value());
  auto from_memory = raw_from_job(job);
  ASSERT_TRUE(from_decoded.ok()) << from_decoded.status().to_string();
  ASSERT_TRUE(from_memory.ok());
  EXPECT_EQ(from_decoded->samples, from_memory->samples);
  EXPECT_EQ(from_decoded->leads, from_memory->leads);
  EXPECT_EQ(from_decoded->fs, 500);
  // What the decoder does not check is still checked: the units, then the samples.
  job.units = "furlongs";
  decoded = schema::DecodedJob::decode(schema::encode_job(job));
  ASSERT_TRUE(decoded.ok());
  EXPECT_EQ(raw_from_job(decoded.value()).status().field(), "units");
  // A job whose samples were let go cannot be converted (and says so instead of reading them).
  job.units = "";
  decoded = schema::DecodedJob::decode(schema::encode_job(job));
  ASSERT_TRUE(decoded.ok());
  decoded->release_samples();
  EXPECT_EQ(raw_from_job(decoded.value()).status().code(), "internal");
}

TEST(Preprocess, AGivenAwayRecordGivesTheSameSegments) {
  // In model order the record's buffer is reused; in any other order it is copied. Both must
  // give the segments a kept record gives.
  std::vector<std::string> shuffled(kModelLeads.rbegin(), kModelLeads.rend());
  for (const auto& leads : {kModelLeads, shuffled}) {
    const RawEcg raw = make_raw(6000, 500, leads, wave);
    auto kept = preprocess_ecg(raw, {});
    RawEcg copy = raw;
    auto given = preprocess_ecg(std::move(copy), {});
    ASSERT_TRUE(kept.ok()) << kept.status().to_string();
    ASSERT_TRUE(given.ok()) << given.status().to_string();
    EXPECT_EQ(given->segments, kept->segments);
    EXPECT_EQ(given->n_segments, 2);
  }
  // Resampled records too (the buffer is reused for the 12 leads, then resampled).
  const RawEcg at_250 = make_raw(3000, 250, kModelLeads, wave);
  RawEcg copy = at_250;
  auto kept = standardized_500hz(at_250, {});
  auto given = standardized_500hz(std::move(copy), {});
  ASSERT_TRUE(kept.ok());
  ASSERT_TRUE(given.ok());
  EXPECT_EQ(given.value(), kept.value());
}

TEST(Aggregate, MaxForFiveLabelsMeanForOthers) {
  std::vector<std::string> labels = {"Poor data quality", "Sinus rhythm", "Electronic pacemaker",
                                     "Something new"};
  std::vector<float> seg = {0.1f, 0.2f, 0.9f, 0.4f,  //
                            0.7f, 0.6f, 0.3f, 0.0f};
  auto agg = aggregate_probs(labels, seg, 2);
  ASSERT_EQ(agg.size(), 4u);
  EXPECT_FLOAT_EQ(agg[0], 0.7f);
  EXPECT_FLOAT_EQ(agg[1], 0.4f);
  EXPECT_FLOAT_EQ(agg[2], 0.9f);
  EXPECT_FLOAT_EQ(agg[3], 0.2f);
  auto mean = mean_over_segments({1, 2, 3, 5}, 2);
  EXPECT_EQ(mean, (std::vector<float>{2, 3.5f}));
}

}  // namespace
}  // namespace ecgq
