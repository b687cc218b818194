// The clinical-format readers on the committed permissive samples (tests/data/clinical) and on
// files written here (EDF+, GE MUSE XML with good and bad CRCs), and format detection by content.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "records/clinical_io.hpp"
#include "records/clinical_readers.hpp"
#include "records/preprocess.hpp"
#include "records/record_format.hpp"
#include "tests/clinical_support.hpp"
#include "tests/clinical_writers.hpp"
#include "tests/support/process.hpp"

namespace ecgq {
namespace {

using test::edf_file;
using test::muse_file;
namespace fs = std::filesystem;

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// A scratch directory removed at the end of the test.
struct Scratch {
  fs::path dir = fs::temp_directory_path() /
                 ("ecgq-clinical-" + std::to_string(::getpid()) + "-" + std::to_string(rand()));
  Scratch() { fs::create_directories(dir); }
  ~Scratch() { fs::remove_all(dir); }
  std::string write(const std::string& name, const std::string& bytes) const {
    const std::string p = (dir / name).string();
    std::ofstream(p, std::ios::binary) << bytes;
    return p;
  }
};

std::string clinical(const std::string& rel) {
  return test::data_path("clinical/" + rel);
}

TEST(ClinicalDetect, FormatsAreToldApartByContent) {
  std::string dicom(132, '\0');
  dicom.replace(128, 4, "DICM");
  EXPECT_EQ(detect_record_format(dicom, ""), RecordFormat::Dicom);
  EXPECT_EQ(detect_record_format("0       " + std::string(248, ' '), ".dat"), RecordFormat::Edf);
  EXPECT_EQ(detect_record_format("<?xml version=\"1.0\"?>\n<!-- c -->\n<AnnotatedECG xmlns=\"x\">",
                                 ".txt"),
            RecordFormat::Hl7Aecg);
  EXPECT_EQ(detect_record_format("<?xml version=\"1.0\"?><!DOCTYPE RestingECG SYSTEM "
                                 "\"restecg.dtd\"><RestingECG>",
                                 ""),
            RecordFormat::GeMuse);
  EXPECT_EQ(detect_record_format("\xEF\xBB\xBF<restingecgdata>", ".xml"), RecordFormat::Philips);
  EXPECT_EQ(detect_record_format("<html>", ".xml"), RecordFormat::Xml);
  EXPECT_EQ(detect_record_format("I,II\n1,2\n", ".csv"), std::nullopt);
  const std::string scp = slurp(clinical("scp-ecg/ecgtoolkit_Example.scp"));
  EXPECT_EQ(detect_record_format(scp, ""), RecordFormat::Scp);
}

TEST(ClinicalDetect, ReadRecordPicksTheReaderByContentWhateverTheName) {
  Scratch s;
  const std::string p = s.write("export_0001", slurp(clinical("hl7-aecg/fda_minimum_aecg.xml")));
  auto r = read_record(p);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->format, "hl7-aecg");
  const std::string other = s.write("notes.xml", "<?xml version=\"1.0\"?><html><body/></html>");
  auto refused = read_record(other);
  ASSERT_FALSE(refused.ok());
  EXPECT_TRUE(refused.status().is(ErrorCode::UnsupportedFormat));
  EXPECT_NE(refused.status().message().find("<html>"), std::string::npos)
      << refused.status().message();
}

TEST(Hl7Aecg, ExampleReadsTwelveLeadsAtFiveHundredHertzAndKeepsEinthoven) {
  auto r = read_record(clinical("hl7-aecg/fda_hl7-2003-12_Example_aECG.xml"));
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->format, "hl7-aecg");
  EXPECT_EQ(r->n_leads(), 12);
  EXPECT_EQ(r->n_samples, 5000);
  EXPECT_DOUBLE_EQ(r->fs, 500);
  EXPECT_EQ(r->leads[0], "I");
  EXPECT_EQ(r->leads[8], "III");
  EXPECT_EQ(r->leads[9], "aVR");
  EXPECT_EQ(r->units[0], "uV");
  EXPECT_DOUBLE_EQ(r->gains[0], 1 / 2.5);
  EXPECT_EQ(r->patient_name, "Clark");
  EXPECT_EQ(r->birth_date, "1953-05-08");
  EXPECT_NE(r->device.find("ELI250"), std::string::npos) << r->device;
  EXPECT_EQ(r->acquisition_time, "2002-11-22T09:10:00");
  // Stored III and aVR agree with I and II within a few 2.5 uV steps.
  EXPECT_LT(test::einthoven_error(*r), 0.0101);
}

TEST(Hl7Aecg, MinimumFileHasOneLead) {
  auto r = read_record(clinical("hl7-aecg/fda_minimum_aecg.xml"));
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->leads, std::vector<std::string>{"II"});
  EXPECT_EQ(r->n_samples, 13);
  EXPECT_NEAR(test::millivolts(*r, 0)[11], -9 * 2.5e-3, 1e-12);
}

TEST(Hl7Aecg, BadDigitsAndMissingIncrementAreNamed) {
  std::string x = slurp(clinical("hl7-aecg/fda_minimum_aecg.xml"));
  std::string bad_digits = x;
  bad_digits.replace(bad_digits.find("-2 -2"), 5, "-2 zz");
  auto a = read_hl7_aecg(bad_digits, "m.xml");
  ASSERT_FALSE(a.ok());
  EXPECT_NE(a.status().message().find("lead II"), std::string::npos) << a.status().message();
  std::string no_inc = x;
  no_inc.replace(no_inc.find("<increment"), 10, "<incrementX");
  auto b = read_hl7_aecg(no_inc, "m.xml");
  ASSERT_FALSE(b.ok());
  EXPECT_NE(b.status().message().find("increment"), std::string::npos) << b.status().message();
  auto c = read_hl7_aecg("<AnnotatedECG><unclosed></AnnotatedECG>", "m.xml");
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("line 1"), std::string::npos) << c.status().message();
}

int16_t ramp(int signal, int64_t t) {
  return static_cast<int16_t>(signal * 1000 + t - 50);
}

TEST(Edf, EdfPlusSignalsByLabelWithPhysicalRangeAndAnnotationsLeftOut) {
  Scratch s;
  const std::string p = s.write("r.edf", edf_file({{"ECG I", "uV", 250},
                                                   {"EDF Annotations", "", 30},
                                                   {"ECG II", "mV", 250},
                                                   {"Resp", "Ohm", 25}},
                                                  4, 0.5, "EDF+C", ramp));
  auto r = read_record(p);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->format, "edf");
  EXPECT_DOUBLE_EQ(r->fs, 500);
  EXPECT_EQ(r->n_samples, 1000);
  EXPECT_EQ(r->leads, (std::vector<std::string>{"I", "II"}));
  EXPECT_EQ(r->units, (std::vector<std::string>{"uV", "mV"}));
  ASSERT_EQ(r->warnings.size(), 1u);
  EXPECT_NE(r->warnings[0].find("Resp"), std::string::npos);
  const auto i = test::millivolts(*r, 0), ii = test::millivolts(*r, 1);
  EXPECT_NEAR(i[0], -50 * 0.1e-3, 1e-9);                // 0.1 uV per step
  EXPECT_NEAR(ii[999], (2000 + 999 - 50) * 0.1, 1e-6);  // signal index 2 in the file
  EXPECT_EQ(r->patient_id, "MCH-0234567");
  EXPECT_EQ(r->patient_name, "Haagse_Harry");
  EXPECT_EQ(r->device, "Sony.");
  EXPECT_EQ(r->acquisition_time, "2002-03-02T13:14:15");
}

TEST(Edf, OneSampleRecordsAndTruncatedOrDiscontinuousFilesAreHandled) {
  Scratch s;
  const std::string one = edf_file({{"I", "mV", 1}, {"II", "mV", 1}}, 800, 0.00125, "", ramp);
  auto r = read_edf(one, "c.edf");
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_DOUBLE_EQ(r->fs, 800);
  EXPECT_EQ(r->n_samples, 800);
  auto cut = read_edf(one.substr(0, one.size() - 3), "c.edf");
  ASSERT_FALSE(cut.ok());
  EXPECT_NE(cut.status().message().find("byte 236"), std::string::npos) << cut.status().message();
  auto d = read_edf(edf_file({{"I", "mV", 10}}, 2, 1, "EDF+D", ramp), "d.edf");
  ASSERT_FALSE(d.ok());
  EXPECT_TRUE(d.status().is(ErrorCode::UnsupportedFormat));
}

TEST(GeMuse, RhythmLeadsWithUnitsPerBitAndCrcChecked) {
  const std::string i("\x01\x00\xff\xff\x10\x00", 6), ii("\x02\x00\x03\x00\x00\x80", 6);
  auto r = read_ge_muse(muse_file(i, ii, clinical::crc32(ii)), "m.xml");
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->format, "ge-muse");
  EXPECT_DOUBLE_EQ(r->fs, 2500);
  EXPECT_EQ(r->leads, (std::vector<std::string>{"I", "II"}));
  EXPECT_EQ(r->n_samples, 3);
  EXPECT_NEAR(test::millivolts(*r, 0)[1], -4.88e-3, 1e-12);
  EXPECT_NEAR(test::millivolts(*r, 1)[2], -32768 * 4.88e-3, 1e-9);
  EXPECT_EQ(r->device, "MAC55");
  EXPECT_EQ(r->acquisition_time, "2017-05-04T16:35:07");
  auto bad = read_ge_muse(muse_file(i, ii, clinical::crc32(ii) ^ 1), "m.xml");
  ASSERT_FALSE(bad.ok());
  EXPECT_TRUE(bad.status().is(ErrorCode::BadRecord));
  EXPECT_NE(bad.status().message().find("lead II"), std::string::npos) << bad.status().message();
  EXPECT_NE(bad.status().message().find("CRC32"), std::string::npos) << bad.status().message();
}

TEST(GeMuse, EightStoredLeadsGetTheFourDerivedLimbLeads) {
  std::string lead(30000, '\0');  // 6 s at 2500 Hz
  for (size_t t = 0; t < 15000; ++t) lead[2 * t] = static_cast<char>(t % 200);
  std::string x = muse_file(lead, lead, clinical::crc32(lead));
  // Six more leads V1-V6 with the same data.
  const size_t at = x.find("</Waveform>");
  const size_t first = x.find("<LeadData>");
  std::string one = x.substr(first, x.find("</LeadData>") + 11 - first);
  std::string more;
  for (int v = 1; v <= 6; ++v) {
    std::string l = one;
    l.replace(l.find("<LeadID>I<"), 10, "<LeadID>V" + std::to_string(v) + "<");
    more += l;
  }
  x.insert(at, more);
  auto r = read_ge_muse(x, "m.xml");
  ASSERT_TRUE(r.ok()) << r.status().message();
  ASSERT_EQ(r->n_leads(), 8);
  EXPECT_EQ(test::derived_leads(*r), (std::vector<std::string>{"III", "aVR", "aVL", "aVF"}));
}

TEST(ClinicalIo, CanonicalLeadNames) {
  EXPECT_EQ(clinical::canonical_lead_name("MDC_ECG_LEAD_AVR"), "aVR");
  EXPECT_EQ(clinical::canonical_lead_name("Lead I (Einthoven)"), "I");
  EXPECT_EQ(clinical::canonical_lead_name("ECG V1"), "V1");
  EXPECT_EQ(clinical::canonical_lead_name("5.6.3-9-61"), "III");
  EXPECT_EQ(clinical::canonical_lead_name("2:64"), "aVF");
  EXPECT_EQ(clinical::canonical_lead_name("MDC_ECG_LEAD_V3R"), "V3R");
  EXPECT_EQ(clinical::canonical_lead_name("Abdomen_1"), "Abdomen_1");
  std::string out;
  EXPECT_TRUE(clinical::base64_decode("TWFu\nTQ==", &out));
  EXPECT_EQ(out, "ManM");
  EXPECT_FALSE(clinical::base64_decode("TW*u", &out));
  EXPECT_EQ(clinical::crc32("123456789"), 0xCBF43926u);
  EXPECT_EQ(clinical::crc_ccitt("123456789"), 0x29B1);
}

}  // namespace
}  // namespace ecgq

namespace ecgq {
namespace {

TEST(Dicom, PydicomTwelveLeadReadsTheRhythmGroupWithSensitivity) {
  auto r = read_record(clinical("dicom/pydicom_waveform_ecg.dcm"));
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->format, "dicom");
  EXPECT_EQ(r->leads, kModelLeads);
  EXPECT_DOUBLE_EQ(r->fs, 1000);
  EXPECT_EQ(r->n_samples, 10000);  // the rhythm group, not the 1200-sample median beat
  EXPECT_EQ(r->units[0], "uV");
  EXPECT_DOUBLE_EQ(r->gains[0], 0.8);  // 1.25 uV per step
  EXPECT_EQ(r->device, "Mortara Instrument, Inc. el250");
  EXPECT_EQ(r->acquisition_time, "2013-01-25T10:59:19");
  EXPECT_LT(test::einthoven_error(*r), 0.01);
}

TEST(Dicom, PixelmedFileDeclaringOneChannelIsReadTolerantlyAndMatchesItsRawReference) {
  auto r = read_record(clinical("dicom/pixelmed_1074466202.fixed_from-SCP-PFE105.dcm"));
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->n_leads(), 12);
  EXPECT_EQ(r->n_samples, 5000);
  ASSERT_EQ(r->warnings.size(), 1u);
  EXPECT_NE(r->warnings[0].find("NumberOfWaveformChannels"), std::string::npos);
  // PFE105.dat: I, II, V1-V6, int16 sample-interleaved, 1 uV.
  const std::string dat = slurp(clinical("scp-ecg/pixelmed_PFE105.dat"));
  ASSERT_EQ(dat.size(), 80000u);
  const std::vector<std::string> order = {"I", "II", "V1", "V2", "V3", "V4", "V5", "V6"};
  double worst = 0;
  for (size_t l = 0; l < order.size(); ++l) {
    const auto mv = test::millivolts(*r, test::lead_index(*r, order[l]));
    for (size_t t = 0; t < 5000; ++t) {
      int16_t v;
      std::memcpy(&v, dat.data() + (t * 8 + l) * 2, 2);
      worst = std::max(worst, std::fabs(mv[t] - v * 1e-3));
    }
  }
  EXPECT_LE(worst, 0.002 + 1e-9);  // 2 uV: the DICOM file was made from the SCP-ECG encoding
}

TEST(Dicom, TruncationsAndForeignObjectsGetSpecificErrors) {
  const std::string good = slurp(clinical("dicom/pydicom_waveform_ecg.dcm"));
  auto cut = read_dicom(good.substr(0, good.size() - 1001), "w.dcm");
  ASSERT_FALSE(cut.ok());
  EXPECT_NE(cut.status().message().find("byte"), std::string::npos) << cut.status().message();
  std::string other = good;
  // CT Image Storage, in the meta group and the data set alike.
  for (size_t uid; (uid = other.find("1.2.840.10008.5.1.4.1.1.9.1.1")) != std::string::npos;)
    other.replace(uid, 29, std::string("1.2.840.10008.5.1.4.1.1.2\0\0\0\0", 29));
  auto ct = read_dicom(other, "ct.dcm");
  ASSERT_FALSE(ct.ok());
  EXPECT_TRUE(ct.status().is(ErrorCode::UnsupportedFormat)) << ct.status().message();
  EXPECT_FALSE(read_dicom(good.substr(0, 130), "x.dcm").ok());
}

}  // namespace
}  // namespace ecgq

namespace ecgq {
namespace {

// DICOM writing for the implicit VR test: little-endian elements.
std::string le(uint32_t v, int n) {
  std::string s;
  for (int i = 0; i < n; ++i) s.push_back(static_cast<char>((v >> (8 * i)) & 0xFF));
  return s;
}
std::string implicit_element(uint32_t tag, const std::string& value) {
  return le(tag >> 16, 2) + le(tag & 0xFFFF, 2) + le(static_cast<uint32_t>(value.size()), 4) +
         value;
}
// A sequence of undefined length whose items have undefined length.
std::string implicit_sequence(uint32_t tag, const std::vector<std::string>& items) {
  std::string s = le(tag >> 16, 2) + le(tag & 0xFFFF, 2) + le(0xFFFFFFFF, 4);
  for (const std::string& item : items)
    s += le(0xFFFE, 2) + le(0xE000, 2) + le(0xFFFFFFFF, 4) + item + le(0xFFFE, 2) + le(0xE00D, 2) +
         le(0, 4);
  return s + le(0xFFFE, 2) + le(0xE0DD, 2) + le(0, 4);
}

// A 12-lead ECG object in implicit VR little endian holding one multiplex group.
std::string implicit_ecg_file(const std::string& group) {
  const std::string ts = "1.2.840.10008.1.2";
  std::string meta_value = ts + std::string(ts.size() % 2, '\0');
  std::string file(128, '\0');
  file += "DICM";
  file += le(0x0002, 2) + le(0x0010, 2) + "UI" + le(static_cast<uint32_t>(meta_value.size()), 2) +
          meta_value;
  file += implicit_element(0x00080016, std::string("1.2.840.10008.5.1.4.1.1.9.1.2") + '\0');
  return file + implicit_sequence(0x54000100, {group});
}

TEST(Dicom, ImplicitVrLittleEndianWithBaselineAndMdcCodes) {
  auto channel = [&](const std::string& code) {
    return implicit_sequence(0x003A0208, {implicit_element(0x00080100, code)}) +
           implicit_element(0x003A0210, "2.5 ") + implicit_element(0x003A0213, "-10 ") +
           implicit_sequence(0x003A0211, {implicit_element(0x00080100, "uV")});
  };
  std::string data;
  for (int t = 0; t < 4; ++t)
    data += le(static_cast<uint16_t>(t), 2) + le(static_cast<uint16_t>(-t), 2);
  const std::string group =
      implicit_element(0x003A0005, le(2, 2)) + implicit_element(0x003A0010, le(4, 4)) +
      implicit_element(0x003A001A, "250 ") + implicit_element(0x003A0020, "RHYTHM") +
      implicit_sequence(0x003A0200, {channel("2:1"), channel("2:62")}) +
      implicit_element(0x54001004, le(16, 2)) + implicit_element(0x54001006, "SS") +
      implicit_element(0x54001010, data);
  const std::string file = implicit_ecg_file(group);
  auto r = read_dicom(file, "i.dcm");
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->leads, (std::vector<std::string>{"I", "aVR"}));
  EXPECT_DOUBLE_EQ(r->fs, 250);
  EXPECT_EQ(r->n_samples, 4);
  // (sample + baseline) * sensitivity: (3 - 10) * 2.5 uV and (-3 - 10) * 2.5 uV.
  EXPECT_NEAR(test::millivolts(*r, 0)[3], -7 * 2.5e-3, 1e-12);
  EXPECT_NEAR(test::millivolts(*r, 1)[3], -13 * 2.5e-3, 1e-12);
  // An item that claims more bytes than there are.
  std::string broken = file;
  broken[broken.size() - 5] = '\x7F';
  EXPECT_FALSE(read_dicom(broken, "i.dcm").ok());
}

// Found by fuzz_dicom: a group of no channels claiming 775 million samples made the reader
// allocate 3.1 GB before any size check could apply (0 channels of any length fit in 0 bytes).
TEST(Dicom, AGroupOfNoChannelsIsRefusedBeforeItsSampleCountIsBelieved) {
  const std::string group =
      implicit_element(0x003A0005, le(0, 2)) + implicit_element(0x003A0010, le(775302709, 4)) +
      implicit_element(0x003A001A, "500 ") + implicit_element(0x003A0020, "RHYTHM") +
      implicit_sequence(0x003A0200, {}) + implicit_element(0x54001004, le(16, 2)) +
      implicit_element(0x54001006, "SS") + implicit_element(0x54001010, "");
  auto r = read_dicom(implicit_ecg_file(group), "z.dcm");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), "bad_record") << r.status().message();
  EXPECT_NE(r.status().message().find("NumberOfWaveformChannels (003A,0005)"), std::string::npos)
      << r.status().message();
}

}  // namespace
}  // namespace ecgq

namespace ecgq {
namespace {

TEST(Philips, XliCompressedFilesOfBothVersionsDecodeToPlausibleTwelveLeads) {
  for (const char* f :
       {"philips-sierra-xml/sierra_1.03_HeartStartMRx_129DYPRG.XML",
        "philips-sierra-xml/sierra_1.04_PageWriterTouch_3191723_ZZDEMOPTONLY.xml"}) {
    SCOPED_TRACE(f);
    auto r = read_record(clinical(f));
    ASSERT_TRUE(r.ok()) << r.status().message();
    EXPECT_EQ(r->format, "philips");
    EXPECT_EQ(r->leads, kModelLeads);
    EXPECT_DOUBLE_EQ(r->fs, 500);
    EXPECT_EQ(r->n_samples, 5500);       // 11000 ms per channel
    EXPECT_DOUBLE_EQ(r->gains[0], 0.2);  // 5 uV
    // Reconstructed limb leads obey Einthoven's law within the integer halving of XLI over the
    // first 10 s; the 11th second holds the device's 1 mV calibration pulses (all 200 steps).
    EXPECT_LT(test::einthoven_error(*r, 5000), 0.0101);
    for (int64_t l = 0; l < 12; ++l) {
      const auto mv = test::millivolts(*r, l);
      double lo = 0, hi = 0;
      for (double v : mv) lo = std::min(lo, v), hi = std::max(hi, v);
      EXPECT_LT(hi - lo, 10) << r->leads[static_cast<size_t>(l)];  // an ECG, not noise
      EXPECT_GT(hi - lo, 0.05) << r->leads[static_cast<size_t>(l)];
    }
  }
}

TEST(Philips, CorruptXliAndUnknownVersionsAreRefused) {
  const std::string x =
      slurp(clinical("philips-sierra-xml/sierra_1.03_HeartStartMRx_129DYPRG.XML"));
  std::string v = x;
  v.replace(v.find("<documentversion>1.03"), 21, "<documentversion>9.99");
  auto a = read_philips(v, "p.xml");
  ASSERT_FALSE(a.ok());
  EXPECT_TRUE(a.status().is(ErrorCode::UnsupportedFormat));
  std::string c = x;
  const size_t at = c.find("compressflag=\"True\"");
  const size_t data = c.find('>', at) + 1;
  c.replace(data, 8, "////////");  // chunk size 0xFFFFFFFF
  auto b = read_philips(c, "p.xml");
  ASSERT_FALSE(b.ok());
  EXPECT_NE(b.status().message().find("XLI chunk of lead 1"), std::string::npos)
      << b.status().message();
}

}  // namespace
}  // namespace ecgq

namespace ecgq {
namespace {

// Largest difference between the same-named leads of two records, in mV.
double worst_difference(const EcgRecord& a, const EcgRecord& b) {
  double worst = 0;
  EXPECT_EQ(a.n_samples, b.n_samples);
  for (int64_t l = 0; l < a.n_leads(); ++l) {
    const int64_t k = test::lead_index(b, a.leads[static_cast<size_t>(l)]);
    EXPECT_GE(k, 0) << a.leads[static_cast<size_t>(l)];
    if (k < 0) continue;
    const auto x = test::millivolts(a, l), y = test::millivolts(b, k);
    for (size_t t = 0; t < std::min(x.size(), y.size()); ++t)
      worst = std::max(worst, std::fabs(x[t] - y[t]));
  }
  return worst;
}

TEST(Scp, PixelmedRecordMatchesItsRawReferenceWithinTwoMicrovolts) {
  auto r = read_record(clinical("scp-ecg/pixelmed_PFE105_redred.scp"));
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->format, "scp-ecg");
  EXPECT_EQ(r->leads, (std::vector<std::string>{"I", "II", "V1", "V2", "V3", "V4", "V5", "V6"}));
  EXPECT_DOUBLE_EQ(r->fs, 500);
  ASSERT_EQ(r->n_samples, 5000);
  const std::string dat = slurp(clinical("scp-ecg/pixelmed_PFE105.dat"));
  double worst = 0;
  for (int64_t l = 0; l < 8; ++l) {
    const auto mv = test::millivolts(*r, l);
    for (size_t t = 0; t < 5000; ++t) {
      int16_t v;
      std::memcpy(&v, dat.data() + (t * 8 + static_cast<size_t>(l)) * 2, 2);
      worst = std::max(worst, std::fabs(mv[t] - v * 1e-3));
    }
  }
  EXPECT_LE(worst, 0.002 + 1e-9);
  // The DICOM conversion of the same record agrees too.
  auto dcm = read_record(clinical("dicom/pixelmed_1074466202.fixed_from-SCP-PFE105.dcm"));
  ASSERT_TRUE(dcm.ok());
  EXPECT_LE(worst_difference(*r, *dcm), 0.004 + 1e-9);
}

TEST(Scp, EcgToolkitExampleIsTheHl7ExampleWithinQuantization) {
  auto scp = read_record(clinical("scp-ecg/ecgtoolkit_Example.scp"));
  ASSERT_TRUE(scp.ok()) << scp.status().message();
  auto hl7 = read_record(clinical("hl7-aecg/fda_hl7-2003-12_Example_aECG.xml"));
  ASSERT_TRUE(hl7.ok());
  EXPECT_EQ(scp->n_leads(), 12);
  EXPECT_LE(worst_difference(*hl7, *scp), 0.0025 + 1e-9);  // one 2.5 uV step
  EXPECT_LT(test::einthoven_error(*scp), 0.0101);
  EXPECT_EQ(scp->patient_name, "Clark");
  EXPECT_EQ(scp->acquisition_time, "2002-11-22T09:10:00");
}

// The digits of `lead`'s sequence in the HL7 example's REPRESENTATIVE_BEAT derived series.
std::vector<int> hl7_representative_digits(const std::string& xml, const std::string& lead) {
  const size_t series = xml.find("\"REPRESENTATIVE_BEAT\"");
  const size_t code = xml.find("\"MDC_ECG_LEAD_" + lead + "\"", series);
  const size_t from = xml.find("<digits>", code), to = xml.find("</digits>", code);
  std::vector<int> out;
  if (series == std::string::npos || code == std::string::npos || to == std::string::npos)
    return out;
  std::istringstream in(xml.substr(from + 8, to - from - 8));
  for (int v; in >> v;) out.push_back(v);
  return out;
}

TEST(Scp, ReferenceBeatIsTheHl7ExamplesRepresentativeBeat) {
  // ECG Toolkit wrote the HL7 example's representative beat into section 5 (and its length
  // and fiducial into section 4): decoded, it is the HL7 beat within one 2.5 uV step.
  auto beat = read_scp_reference_beat(slurp(clinical("scp-ecg/ecgtoolkit_Example.scp")), "x.scp");
  ASSERT_TRUE(beat.ok()) << beat.status().message();
  EXPECT_DOUBLE_EQ(beat->fs, 500);
  ASSERT_EQ(beat->n_samples, 599);
  const std::string xml = slurp(clinical("hl7-aecg/fda_hl7-2003-12_Example_aECG.xml"));
  double worst = 0, peak = 0;
  for (const std::string lead : {"I", "II", "V1", "V2", "V3", "V4", "V5", "V6"}) {
    const auto digits = hl7_representative_digits(xml, lead);
    ASSERT_EQ(digits.size(), 599u) << lead;
    const auto mv = test::millivolts(*beat, test::lead_index(*beat, lead));
    for (size_t t = 0; t < digits.size(); ++t) {
      worst = std::max(worst, std::fabs(mv[t] - digits[t] * 0.0025));
      peak = std::max(peak, std::fabs(mv[t]));
    }
  }
  EXPECT_LE(worst, 0.0025 + 1e-9);
  EXPECT_GT(peak, 0.5);  // a real QRS, not zeros
  // A record without sections 4 and 5 has no reference beat.
  auto none = read_scp_reference_beat(slurp(clinical("scp-ecg/pixelmed_PFE105_redred.scp")), "p");
  ASSERT_FALSE(none.ok());
  EXPECT_NE(none.status().message().find("section 4: absent"), std::string::npos)
      << none.status().message();
}

TEST(Scp, WelchAllynFirstDifferencesAndNonConformingFilesRefused) {
  auto w =
      read_record(clinical("scp-ecg/welchallyn_CardioControl_ECG_20170504_163507_123456789.SCP"));
  ASSERT_TRUE(w.ok()) << w.status().message();
  EXPECT_EQ(w->n_leads(), 8);
  EXPECT_EQ(w->n_samples, 6000);
  EXPECT_NEAR(w->fs, 1e6 / 1667, 1e-9);
  auto h = read_record(clinical("scp-ecg/healforce_Prince180D_62.SCP"));
  ASSERT_FALSE(h.ok());
  EXPECT_TRUE(h.status().is(ErrorCode::BadRecord));
  EXPECT_NE(h.status().message().find("not an EN 1064 conforming SCP-ECG file"), std::string::npos)
      << h.status().message();
  std::string flipped = slurp(clinical("scp-ecg/pixelmed_PFE105_redred.scp"));
  flipped[1000] = static_cast<char>(flipped[1000] ^ 0x10);
  auto c = read_scp(flipped, "f.scp");
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("record CRC"), std::string::npos) << c.status().message();
}

}  // namespace
}  // namespace ecgq
