// Clinical formats end to end: `ecgq convert` (npy, wfdb, csv; identifiers only when asked;
// refusals) and one file of each format through `ecgq submit` against a real broker and worker
// with the tiny model.
#include <fstream>
#include <sstream>

#include "records/ecg_record.hpp"
#include "records/npy.hpp"
#include "tests/clinical_support.hpp"
#include "tests/clinical_writers.hpp"
#include "tests/scp_synthetic.hpp"
#include "tests/test_e2e_cluster.hpp"

namespace ecgq::test {
namespace {

std::string clinical(const std::string& rel) {
  return data_path("clinical/" + rel);
}

client::Json read_json(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return client::Json::parse(ss.str());
}

// int16 little-endian bytes of `mv` at 1 uV per step.
std::string microvolt_bytes(const float* mv, int64_t n, double per_step_uv) {
  std::string out;
  for (int64_t t = 0; t < n; ++t) {
    const auto v = static_cast<int16_t>(std::lround(mv[t] * 1000.0 / per_step_uv));
    out.push_back(static_cast<char>(v & 0xFF));
    out.push_back(static_cast<char>((v >> 8) & 0xFF));
  }
  return out;
}

// A 10 s, 8-lead GE MUSE file (I, II, V1-V6 of the synthetic ECG) at 500 Hz.
std::string write_muse(const TempDir& dir) {
  const std::vector<float> ecg = synthetic_ecg(5000);  // I II III aVR aVL aVF V1..V6
  auto lead = [&](int l) { return microvolt_bytes(ecg.data() + l * 5000, 5000, 4.88); };
  std::vector<std::string> names, data;
  for (int v = 1; v <= 6; ++v) {
    names.push_back("V" + std::to_string(v));
    data.push_back(lead(5 + v));
  }
  std::string x = muse_file(lead(0), lead(1), clinical::crc32(lead(1)), names, data);
  x.replace(x.find("<SampleBase>250"), 15, "<SampleBase>500");
  x.replace(x.find("<SampleExponent>1"), 17, "<SampleExponent>0");
  const std::string path = dir.file("muse_export.xml");
  std::ofstream(path, std::ios::binary) << x;
  return path;
}

// A 10 s, 12-lead EDF of the synthetic ECG (records of 1 s at 500 Hz; 0.1 uV per step).
std::string write_edf(const TempDir& dir) {
  static const std::vector<float> ecg = synthetic_ecg(5000);
  std::vector<std::tuple<std::string, std::string, int>> signals;
  for (const auto& name : kModelLeads) signals.emplace_back("ECG " + name, "uV", 500);
  const std::string path = dir.file("holter.edf");
  std::ofstream(path, std::ios::binary) << edf_file(signals, 10, 1, "EDF+C", [](int s, int64_t t) {
    return static_cast<int16_t>(std::lround(ecg[static_cast<size_t>(s * 5000 + t)] * 1e4));
  });
  return path;
}

TEST(ConvertCli, NpyArraysWithSidecarsAndNoIdentifiersUnlessAsked) {
  ECGQ_REQUIRE_BINARIES("ecgq");
  TempDir dir;
  const std::string out = dir.file("out");
  const std::string hl7 = clinical("hl7-aecg/fda_hl7-2003-12_Example_aECG.xml");
  const std::string dcm = clinical("dicom/pydicom_waveform_ecg.dcm");
  const std::string muse = write_muse(dir);
  auto run =
      run_command({bin("ecgq"), "convert", "--to", "npy", "--out", out, hl7, dcm, muse}, 60s);
  ASSERT_EQ(run.exit_code, 0) << run.err;
  auto npy = read_npy(out + "/fda_hl7-2003-12_Example_aECG.npy");
  ASSERT_TRUE(npy.ok()) << npy.status().message();
  EXPECT_EQ(npy->dtype, "f32");
  EXPECT_EQ(npy->shape, (std::vector<int64_t>{12, 5000}));
  const auto j = read_json(out + "/fda_hl7-2003-12_Example_aECG.json");
  std::vector<std::string> keys;
  for (const auto& [k, v] : j.items()) keys.push_back(k);
  EXPECT_EQ(keys,
            (std::vector<std::string>{"fs", "leads", "units", "source_format", "derived_leads",
                                      "duration_s", "device", "acquisition_time"}));
  EXPECT_EQ(j["leads"].get<std::vector<std::string>>(), kModelLeads);
  EXPECT_EQ(j["source_format"], "hl7-aecg");
  EXPECT_DOUBLE_EQ(j["duration_s"].get<double>(), 10);
  const auto m = read_json(out + "/muse_export.json");
  EXPECT_EQ(m["derived_leads"].get<std::vector<std::string>>(),
            (std::vector<std::string>{"III", "aVR", "aVL", "aVF"}));
  EXPECT_EQ(m["leads"].get<std::vector<std::string>>(), kModelLeads);
  auto muse_npy = read_npy(out + "/muse_export.npy");
  ASSERT_TRUE(muse_npy.ok());
  EXPECT_EQ(muse_npy->shape, (std::vector<int64_t>{12, 5000}));
  // Patient identifiers: the HL7 example names "Clark"; written only with --keep-identifiers.
  std::ifstream sidecar(out + "/fda_hl7-2003-12_Example_aECG.json");
  std::string text((std::istreambuf_iterator<char>(sidecar)), std::istreambuf_iterator<char>());
  EXPECT_EQ(text.find("Clark"), std::string::npos);
  const std::string kept = dir.file("kept");
  auto k = run_command(
      {bin("ecgq"), "convert", "--to", "npy", "--out", kept, "--keep-identifiers", hl7}, 60s);
  ASSERT_EQ(k.exit_code, 0) << k.err;
  const auto kj = read_json(kept + "/fda_hl7-2003-12_Example_aECG.json");
  EXPECT_EQ(kj["patient_name"], "Clark");
  EXPECT_EQ(kj["birth_date"], "1953-05-08");
}

TEST(ConvertCli, WfdbAndCsvOutputsReadBackAsTheSameSignals) {
  ECGQ_REQUIRE_BINARIES("ecgq");
  TempDir dir;
  const std::string dcm = clinical("dicom/pydicom_waveform_ecg.dcm");
  auto original = read_record(dcm);
  ASSERT_TRUE(original.ok());
  for (const char* to : {"wfdb", "csv"}) {
    SCOPED_TRACE(to);
    const std::string out = dir.file(to);
    auto run = run_command({bin("ecgq"), "convert", "--to", to, "--out", out, dcm}, 60s);
    ASSERT_EQ(run.exit_code, 0) << run.err;
    auto back =
        read_record(out + "/pydicom_waveform_ecg" + (std::string(to) == "wfdb" ? ".hea" : ".csv"));
    ASSERT_TRUE(back.ok()) << back.status().message();
    EXPECT_EQ(back->leads, kModelLeads);
    EXPECT_DOUBLE_EQ(back->fs, 1000);
    ASSERT_EQ(back->n_samples, 10000);
    double worst = 0;
    for (int64_t l = 0; l < 12; ++l) {
      const auto a = millivolts(*original, l), b = millivolts(*back, l);
      for (size_t t = 0; t < a.size(); ++t) worst = std::max(worst, std::fabs(a[t] - b[t]));
    }
    EXPECT_LE(worst, 0.0005 + 1e-6);  // half a 1 uV WFDB step; CSV keeps 9 digits
  }
}

TEST(ConvertCli, BimodalScpIsWrittenAtTheReferenceBeatRate) {
  ECGQ_REQUIRE_BINARIES("ecgq");
  TempDir dir;
  // Section 6 stores the residual at 250 Hz outside the QRS; the record is 500 Hz.
  const std::string scp = dir.file("bimodal.scp");
  std::ofstream(scp, std::ios::binary) << scp_synthetic::compressed_record(2);
  auto run = run_command({bin("ecgq"), "convert", "--to", "npy", "--out", dir.file("o"), scp}, 60s);
  ASSERT_EQ(run.exit_code, 0) << run.err;
  const auto j = read_json(dir.file("o") + "/bimodal.json");
  EXPECT_DOUBLE_EQ(j["fs"].get<double>(), 500);
  EXPECT_EQ(j["source_format"], "scp-ecg");
  EXPECT_DOUBLE_EQ(j["duration_s"].get<double>(), 10);
  auto npy = read_npy(dir.file("o") + "/bimodal.npy");
  ASSERT_TRUE(npy.ok()) << npy.status().message();
  ASSERT_EQ(npy->shape.size(), 2u);
  EXPECT_EQ(npy->shape[1], 5000);
  // Row 0 is lead I: the QRS at sample 300 (1-based) is back at its height.
  const auto* mv = reinterpret_cast<const float*>(npy->data.data());
  EXPECT_NEAR(mv[299] * 1000.0, scp_synthetic::rhythm_uv(0, 300), 4);
}

TEST(ConvertCli, RefusedInputsGetOneLineEachAndExitOne) {
  ECGQ_REQUIRE_BINARIES("ecgq");
  TempDir dir;
  const std::string bad = dir.file("report.xml");
  std::ofstream(bad) << "<?xml version=\"1.0\"?><report/>";
  const std::string good = clinical("hl7-aecg/fda_minimum_aecg.xml");
  auto run =
      run_command({bin("ecgq"), "convert", "--to", "npy", "--out", dir.file("o"), bad, good}, 60s);
  EXPECT_EQ(run.exit_code, 1);
  EXPECT_NE(run.err.find("refused " + bad + ": XML root element <report>"), std::string::npos)
      << run.err;
  std::ifstream written(dir.file("o") + "/fda_minimum_aecg.npy");
  EXPECT_TRUE(written.good());
  auto usage =
      run_command({bin("ecgq"), "convert", "--to", "mat", "--out", dir.file("o"), good}, 60s);
  EXPECT_EQ(usage.exit_code, 2) << usage.err;
}

TEST(E2eClinical, OneFileOfEachFormatThroughTheClusterGivesItsSegments) {
  ECGQ_REQUIRE_BINARIES("ecgq-broker", "ecgq-worker", "ecgq");
  Broker broker;
  ASSERT_TRUE(broker.ready) << broker.diagnostics();
  auto w = start_worker(broker.endpoint, "w1");
  TempDir dir;
  // (file, segments): 10 s records give 2 segments of 5 s; Philips stores 11 s.
  const std::vector<std::pair<std::string, int>> files = {
      {clinical("hl7-aecg/fda_hl7-2003-12_Example_aECG.xml"), 2},
      {clinical("dicom/pydicom_waveform_ecg.dcm"), 2},
      {clinical("philips-sierra-xml/sierra_1.03_HeartStartMRx_129DYPRG.XML"), 2},
      {clinical("scp-ecg/pixelmed_PFE105_redred.scp"), 2},
      {write_muse(dir), 2},
      {write_edf(dir), 2},
  };
  std::vector<std::string> argv{bin("ecgq"), "--broker", broker.endpoint, "submit", "--ordered"};
  for (const auto& f : files) argv.push_back(f.first);
  auto run = run_command(argv, 120s);
  ASSERT_EQ(run.exit_code, 0) << run.err;
  std::istringstream in(run.out);
  std::string line;
  size_t i = 0;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    ASSERT_LT(i, files.size());
    const auto j = client::Json::parse(line);
    SCOPED_TRACE(files[i].first);
    EXPECT_EQ(j["path"], files[i].first);
    EXPECT_EQ(j["status"], "ok") << line;
    EXPECT_EQ(j["n_segments"], files[i].second) << line;
    EXPECT_EQ(j["probs"].size(), 17u);
    ++i;
  }
  EXPECT_EQ(i, files.size());
}

}  // namespace
}  // namespace ecgq::test
