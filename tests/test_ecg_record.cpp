// read_record over every real record in tests/data/ecg, the header-less .mat path, CSV and .npy
// files, and jobs built from records (job_from_record -> raw_from_job -> preprocess_ecg).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <fstream>

#include "records/ecg_record.hpp"
#include "records/npy.hpp"
#include "records/preprocess.hpp"
#include "tests/support/process.hpp"

namespace ecgq {
namespace {

// Channel `lead` of `r` in its physical units ((raw - baseline) / gain), computed here from the
// raw samples the reader keeps.
std::vector<double> physical(const EcgRecord& r, int64_t lead) {
  std::vector<double> out(static_cast<size_t>(r.n_samples));
  const double g = r.gains.empty() ? 1.0 : r.gains[static_cast<size_t>(lead)];
  const double b = r.baselines.empty() ? 0.0 : r.baselines[static_cast<size_t>(lead)];
  for (int64_t t = 0; t < r.n_samples; ++t) out[static_cast<size_t>(t)] = (r.raw(lead, t) - b) / g;
  return out;
}

struct Expect {
  std::string record;
  int64_t n_leads;
  double fs;
  int64_t n_samples;
  int64_t segments;     // -1: missing_leads
  std::string missing;  // expected in the missing_leads message
  size_t ignored;
  std::vector<std::string> derived;
};

const std::vector<Expect> kRecords = {
    {"s0010_re", 15, 1000, 38400, 7, "", 3, {}},  // 38.4 s -> 19200 samples at 500 Hz
    {"HR06000", 12, 500, 5000, 2, "", 0, {}},
    {"HR06002", 12, 500, 5000, 2, "", 0, {}},
    {"E07500", 12, 500, 5000, 2, "", 0, {}},
    {"E07509", 12, 500, 5000, 2, "", 0, {}},
    {"JS20000", 12, 500, 5000, 2, "", 0, {}},
    {"JS20004", 12, 500, 5000, 2, "", 0, {}},
    {"1", 12, 500, 5000, 2, "", 0, {}},
    {"51", 12, 500, 5000, 2, "", 0, {}},
    {"34", 12, 500, 5000, 2, "", 0, {}},
    {"00001_lr", 12, 100, 1000, 2, "", 0, {}},
    {"208",
     2,
     360,
     650000,
     -1,
     "missing leads I, II, III, aVR, aVL, aVF, V2, V3, V4, V5, V6",
     0,
     {}},
    {"data_101_6", 2, 200, 22355, -1, "missing leads V1, V2, V3, V4, V5, V6", 0, {}},
    {"v102s",
     4,
     250,
     75000,
     -1,
     "missing leads I, III, aVR, aVL, aVF, V1, V2, V3, V4, V5, V6",
     0,
     {}},
};

Expected<Preprocessed> run(const EcgRecord& r) {
  auto job = job_from_record(r);
  if (!job.ok()) return job.status();
  auto raw = raw_from_job(job.value());
  if (!raw.ok()) return raw.status();
  return preprocess_ecg(raw.value(), PreprocessLimits{});
}

TEST(EcgRecord, EveryRealRecordReadsAndPreprocessesOrNamesMissingLeads) {
  for (const Expect& e : kRecords) {
    SCOPED_TRACE(e.record);
    auto r = read_record(test::data_path("ecg/" + e.record + ".hea"));
    ASSERT_TRUE(r.ok()) << r.status().to_string();
    EXPECT_EQ(r->format, "wfdb");
    EXPECT_EQ(r->name, e.record);
    EXPECT_EQ(r->n_leads(), e.n_leads);
    EXPECT_EQ(r->fs, e.fs);
    EXPECT_EQ(r->n_samples, e.n_samples);
    EXPECT_EQ(r->dtype, "i16");
    EXPECT_EQ(r->i16.size(), static_cast<size_t>(e.n_leads * e.n_samples));
    EXPECT_EQ(r->gains.size(), static_cast<size_t>(e.n_leads));
    auto job = job_from_record(r.value());
    ASSERT_TRUE(job.ok());
    EXPECT_EQ(job->ecg.dtype, "i16");
    EXPECT_EQ(job->ecg.data.size(), static_cast<size_t>(e.n_leads * e.n_samples) * 2);
    auto p = run(r.value());
    if (e.segments < 0) {
      ASSERT_FALSE(p.ok());
      EXPECT_EQ(p.status().code(), "missing_leads");
      EXPECT_EQ(p.status().field(), "leads");
      EXPECT_NE(p.status().message().find(e.missing), std::string::npos) << p.status().message();
    } else {
      ASSERT_TRUE(p.ok()) << p.status().to_string();
      EXPECT_EQ(p->n_segments, e.segments);
      EXPECT_EQ(p->ignored_channels.size(), e.ignored);
      EXPECT_EQ(p->derived_leads, e.derived);
    }
  }
}

TEST(EcgRecord, PhysicalUnitsAndLabels) {
  auto hr = read_record(test::data_path("ecg/HR06000.hea"));
  ASSERT_TRUE(hr.ok());
  EXPECT_EQ(hr->source_labels, (std::vector<std::string>{"Dx:164934002", "Dx:426783006"}));
  EXPECT_EQ(hr->units[0], "mv");
  EXPECT_DOUBLE_EQ(physical(*hr, 0)[0], 10 / 1000.0);  // initial value 10 at 1000/mv
  // CPSC 2021: baselines far outside int16 put the signal on a DC offset of several mV.
  auto cpsc = read_record(test::data_path("ecg/data_101_6.hea"));
  ASSERT_TRUE(cpsc.ok());
  EXPECT_DOUBLE_EQ(cpsc->baselines[0], -161790);
  EXPECT_NEAR(physical(*cpsc, 0)[0], (-10581 + 161790) / 30061.276794035417, 1e-12);
  EXPECT_EQ(cpsc->source_labels, (std::vector<std::string>{"paroxysmal atrial fibrillation"}));
  // LUDB: every lead spans exactly 1 mV peak to peak.
  auto ludb = read_record(test::data_path("ecg/1.hea"));
  ASSERT_TRUE(ludb.ok());
  for (int64_t l = 0; l < 12; ++l) {
    auto v = physical(*ludb, l);
    const auto [lo, hi] = std::minmax_element(v.begin(), v.end());
    EXPECT_NEAR(*hi - *lo, 1.0, 1e-9) << ludb->leads[l];
  }
  EXPECT_EQ(ludb->source_labels.front(), "Rhythm: Sinus bradycardia.");
  // The job carries the same physical values (raw_from_job applies gain and baseline).
  auto job = job_from_record(cpsc.value());
  ASSERT_TRUE(job.ok());
  EXPECT_EQ(job->gain.size(), 2u);
  EXPECT_EQ(job->units, "mV");
  auto raw = raw_from_job(job.value());
  ASSERT_TRUE(raw.ok());
  auto phys = physical(*cpsc, 1);
  for (int64_t t = 0; t < cpsc->n_samples; t += 1000)
    EXPECT_DOUBLE_EQ(raw->samples[cpsc->n_samples + t], phys[t]);
  // One gain for all leads collapses to a single value; no baselines at all to none.
  auto hrjob = job_from_record(hr.value());
  ASSERT_TRUE(hrjob.ok());
  EXPECT_EQ(hrjob->gain, (std::vector<double>{1000}));
  EXPECT_TRUE(hrjob->baseline.empty());
}

TEST(EcgRecord, MatReadableViaHeaderAndDirectly) {
  for (const std::string rec : {"HR06000", "E07500", "JS20004"}) {
    SCOPED_TRACE(rec);
    auto via_header = read_record(test::data_path("ecg/" + rec + ".hea"));
    ASSERT_TRUE(via_header.ok());
    auto via_mat = read_record(test::data_path("ecg/" + rec + ".mat"));  // finds the header
    ASSERT_TRUE(via_mat.ok());
    EXPECT_EQ(via_mat->format, "wfdb");
    EXPECT_EQ(via_mat->i16, via_header->i16);
    ReadOptions opt;
    auto no_fs = read_mat_v4(test::data_path("ecg/" + rec + ".mat"), opt);
    ASSERT_FALSE(no_fs.ok());
    EXPECT_EQ(no_fs.status().field(), "fs");
    opt.fs = 500;
    auto direct = read_mat_v4(test::data_path("ecg/" + rec + ".mat"), opt);
    ASSERT_TRUE(direct.ok()) << direct.status().to_string();
    EXPECT_EQ(direct->format, "mat");
    EXPECT_EQ(direct->dtype, "i16");
    EXPECT_EQ(direct->n_samples, 5000);
    EXPECT_EQ(direct->leads, kModelLeads);
    EXPECT_EQ(direct->i16, via_header->i16);
    // Gains do not matter after the per-lead z-score: both paths give the same model input.
    auto a = run(via_header.value());
    auto b = run(direct.value());
    ASSERT_TRUE(a.ok() && b.ok());
    EXPECT_EQ(a->n_segments, 2);
    double worst = 0;
    for (size_t i = 0; i < a->segments.size(); ++i)
      worst = std::max(worst, static_cast<double>(std::abs(a->segments[i] - b->segments[i])));
    EXPECT_LT(worst, 1e-5);
  }
}

TEST(EcgRecord, HeaderlessMatInATempDirIsParsedDirectly) {
  test::TempDir dir;
  std::ifstream src(test::data_path("ecg/E07509.mat"), std::ios::binary);
  std::ofstream(dir.file("copy.mat"), std::ios::binary) << src.rdbuf();
  ReadOptions opt;
  opt.fs = 500;
  auto r = read_record(dir.file("copy.mat"), opt);
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(r->format, "mat");
  EXPECT_EQ(r->n_leads(), 12);
  std::ofstream(dir.file("v5.mat"), std::ios::binary)
      << "MATLAB 5.0 MAT-file, Platform: GLNXA64" << std::string(200, ' ');
  auto v5 = read_record(dir.file("v5.mat"), opt);
  ASSERT_FALSE(v5.ok());
  EXPECT_EQ(v5.status().code(), "unsupported_format");
}

TEST(EcgRecord, SignalFileAndBareRecordNamesFindTheirHeader) {
  auto dat = read_record(test::data_path("ecg/s0010_re.xyz"));
  ASSERT_TRUE(dat.ok()) << dat.status().to_string();
  EXPECT_EQ(dat->n_leads(), 15);
  EXPECT_EQ(dat->leads[14], "vz");
  auto bare = read_record(test::data_path("ecg/00001_lr"));
  ASSERT_TRUE(bare.ok());
  EXPECT_EQ(bare->fs, 100);
  EXPECT_EQ(read_record(test::data_path("ecg/nope.hea")).status().code(), "not_found");
  EXPECT_EQ(read_record(test::data_path("ecg/README.md")).status().code(), "unsupported_format");
  EXPECT_EQ(read_record(test::data_path("ecg")).status().code(), "unsupported_format");
}

// The 12-lead LUDB record `1` in physical units, lead-major.
EcgRecord ludb1() {
  auto r = read_record(test::data_path("ecg/1.hea"));
  EXPECT_TRUE(r.ok());
  return r.value();
}

TEST(EcgRecord, CsvWithHeaderAndTimeColumnMatchesWfdb) {
  const EcgRecord src = ludb1();
  test::TempDir dir;
  {
    std::ofstream out(dir.file("ludb1.csv"));
    out << "time";
    for (const auto& l : src.leads) out << "," << l;
    out << "\n";
    out.precision(17);
    std::vector<std::vector<double>> phys;
    for (int64_t l = 0; l < 12; ++l) phys.push_back(physical(src, l));
    for (int64_t t = 0; t < src.n_samples; ++t) {
      out << t * 0.002;
      for (int64_t l = 0; l < 12; ++l) out << "," << phys[l][t];
      out << "\r\n";
    }
  }
  auto csv = read_record(dir.file("ludb1.csv"));
  ASSERT_TRUE(csv.ok()) << csv.status().to_string();
  EXPECT_EQ(csv->format, "csv");
  EXPECT_EQ(csv->fs, 500);
  EXPECT_EQ(csv->leads, src.leads);
  EXPECT_EQ(csv->n_samples, 5000);
  EXPECT_EQ(csv->dtype, "f64");
  auto a = run(src);
  auto b = run(csv.value());
  ASSERT_TRUE(a.ok() && b.ok()) << b.status().to_string();
  ASSERT_EQ(a->segments.size(), b->segments.size());
  double worst = 0;
  for (size_t i = 0; i < a->segments.size(); ++i)
    worst = std::max(worst, static_cast<double>(std::abs(a->segments[i] - b->segments[i])));
  EXPECT_LT(worst, 1e-6);
}

void write_text(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::binary) << text;
}

TEST(EcgRecord, CsvRatesNamesAndErrors) {
  test::TempDir dir;
  write_text(dir.file("c.csv"), "# fs: 250 Hz\nI;II;V1\n1;2;3\n4;5;6\n");
  auto c = read_record(dir.file("c.csv"));
  ASSERT_TRUE(c.ok()) << c.status().to_string();
  EXPECT_EQ(c->fs, 250);
  EXPECT_EQ(c->leads, (std::vector<std::string>{"I", "II", "V1"}));
  EXPECT_EQ(c->f64, (std::vector<double>{1, 4, 2, 5, 3, 6}));
  write_text(dir.file("fs.csv"), "fs,I,II\n360,1,2\n360,3,4\n");
  auto f = read_record(dir.file("fs.csv"));
  ASSERT_TRUE(f.ok());
  EXPECT_EQ(f->fs, 360);
  EXPECT_EQ(f->leads, (std::vector<std::string>{"I", "II"}));
  write_text(dir.file("ms.csv"), "time_ms,I\n0,1\n4,2\n8,3\n");
  auto ms = read_record(dir.file("ms.csv"));
  ASSERT_TRUE(ms.ok());
  EXPECT_EQ(ms->fs, 250);
  write_text(dir.file("none.csv"), "I,II\n1,2\n");
  auto none = read_record(dir.file("none.csv"));
  ASSERT_FALSE(none.ok());
  EXPECT_EQ(none.status().field(), "fs");
  ReadOptions opt;
  opt.fs = 500;
  EXPECT_TRUE(read_record(dir.file("none.csv"), opt).ok());
  write_text(dir.file("bad.csv"), "I,II\n1,2\n3,x\n");
  auto bad = read_record(dir.file("bad.csv"), opt);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("line 3 column 2: 'x' is not a number"), std::string::npos)
      << bad.status().message();
  write_text(dir.file("ragged.csv"), "I,II\n1,2\n3\n");
  EXPECT_EQ(read_record(dir.file("ragged.csv"), opt).status().code(), "bad_record");
  // No header row: 12 columns are taken as the model leads, with a warning.
  std::string rows;
  for (int t = 0; t < 3; ++t) rows += "1,2,3,4,5,6,7,8,9,10,11,12\n";
  write_text(dir.file("noheader.csv"), rows);
  auto nh = read_record(dir.file("noheader.csv"), opt);
  ASSERT_TRUE(nh.ok());
  EXPECT_EQ(nh->leads, kModelLeads);
  EXPECT_EQ(nh->warnings.size(), 1u);
  write_text(dir.file("three.csv"), "1,2,3\n");
  EXPECT_EQ(read_record(dir.file("three.csv"), opt).status().field(), "leads");
}

TEST(EcgRecord, CsvEmptyCellBecomesBadSamplesNamingLeadAndIndex) {
  test::TempDir dir;
  std::string text = "I,II,III,aVR,aVL,aVF,V1,V2,V3,V4,V5,V6\n";
  for (int t = 0; t < 3000; ++t) {
    for (int l = 0; l < 12; ++l) {
      if (l) text += ",";
      if (!(l == 7 && t == 2024)) text += std::to_string((t * (l + 3)) % 17);
    }
    text += "\n";
  }
  write_text(dir.file("gap.csv"), text);
  ReadOptions opt;
  opt.fs = 500;
  auto r = read_record(dir.file("gap.csv"), opt);
  ASSERT_TRUE(r.ok());
  auto p = run(r.value());
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.status().code(), "bad_samples");
  EXPECT_NE(p.status().message().find("lead V2 sample 2024 is NaN"), std::string::npos)
      << p.status().message();
}

// Found by fuzz_records: a line of vertical-tab whitespace before a header with a time column
// used to count as a row of no columns, and the time column's span read an empty vector.
TEST(EcgRecord, CsvLineOfOtherWhitespaceIsBlankNotAnEmptyRow) {
  test::TempDir dir;
  write_text(dir.file("vt.csv"), "\v\ntime (ms) I\n");
  auto r = read_record(dir.file("vt.csv"), ReadOptions{});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), "bad_record");
  EXPECT_NE(r.status().message().find("no data rows"), std::string::npos) << r.status().message();
  write_text(dir.file("vt2.csv"), "\f\ntime_ms,I,II\n0,1,2\n2,3,4\n4,5,6\n");
  auto ok = read_record(dir.file("vt2.csv"), ReadOptions{});
  ASSERT_TRUE(ok.ok()) << ok.status().to_string();
  EXPECT_EQ(ok->n_samples, 3);
  EXPECT_DOUBLE_EQ(ok->fs, 500.0);
}

// A .npy file of any dtype, written by hand (format 1.0, C order).
void write_npy(const std::string& path, const std::string& descr, std::vector<int64_t> shape,
               const void* data, size_t bytes) {
  std::string dims;
  for (size_t i = 0; i < shape.size(); ++i)
    dims += std::to_string(shape[i]) + (i + 1 < shape.size() || shape.size() == 1 ? ", " : "");
  std::string header =
      "{'descr': '" + descr + "', 'fortran_order': False, 'shape': (" + dims + "), }";
  while ((10 + header.size() + 1) % 64) header += ' ';
  header += '\n';
  std::string out = "\x93NUMPY";
  out += '\x01';
  out += '\x00';
  out += static_cast<char>(header.size() & 0xFF);
  out += static_cast<char>(header.size() >> 8);
  out += header;
  out.append(static_cast<const char*>(data), bytes);
  write_text(path, out);
}

TEST(EcgRecord, NpyLayoutsAndDtypes) {
  const EcgRecord src = ludb1();
  test::TempDir dir;
  // [leads, samples] int16 with the raw ADC values, and [samples, leads] float32 physical.
  write_npy(dir.file("adc.npy"), "<i2", {12, 5000}, src.i16.data(), src.i16.size() * 2);
  std::vector<float> t_major(12 * 5000);
  for (int64_t l = 0; l < 12; ++l) {
    auto v = physical(src, l);
    for (int64_t t = 0; t < 5000; ++t) t_major[t * 12 + l] = static_cast<float>(v[t]);
  }
  ASSERT_TRUE(write_npy_f32(dir.file("phys.npy"), t_major.data(), {5000, 12}).ok());
  std::vector<double> f64(src.i16.begin(), src.i16.end());
  write_npy(dir.file("f64.npy"), "<f8", {1, 12, 5000}, f64.data(), f64.size() * 8);
  ReadOptions opt;
  EXPECT_EQ(read_record(dir.file("adc.npy"), opt).status().field(), "fs");
  opt.fs = 500;
  auto adc = read_record(dir.file("adc.npy"), opt);
  ASSERT_TRUE(adc.ok()) << adc.status().to_string();
  EXPECT_EQ(adc->dtype, "i16");
  EXPECT_EQ(adc->i16, src.i16);
  EXPECT_EQ(adc->leads, kModelLeads);
  auto phys = read_record(dir.file("phys.npy"), opt);
  ASSERT_TRUE(phys.ok()) << phys.status().to_string();
  EXPECT_EQ(phys->dtype, "f32");
  EXPECT_EQ(phys->n_leads(), 12);
  EXPECT_EQ(phys->n_samples, 5000);
  auto wide = read_record(dir.file("f64.npy"), opt);
  ASSERT_TRUE(wide.ok()) << wide.status().to_string();
  EXPECT_EQ(wide->dtype, "f64");
  // All three give the model input of the WFDB record (the z-score removes gain and baseline).
  auto want = run(src);
  ASSERT_TRUE(want.ok());
  for (const EcgRecord* r : {&adc.value(), &phys.value(), &wide.value()}) {
    auto got = run(*r);
    ASSERT_TRUE(got.ok()) << got.status().to_string();
    double worst = 0;
    for (size_t i = 0; i < want->segments.size(); ++i)
      worst = std::max(worst, static_cast<double>(std::abs(want->segments[i] - got->segments[i])));
    EXPECT_LT(worst, 1e-5) << r->path;
  }
  // Explicit names pick the axis and must match its size.
  opt.leads = {"I", "II"};
  EXPECT_EQ(read_record(dir.file("adc.npy"), opt).status().field(), "leads");
}

}  // namespace
}  // namespace ecgq
