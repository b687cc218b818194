// Every sample file of ../shared/clinical (README.md there) read or refused as its README says,
// including the GPL-3.0 ones that are not copied into the repository (GE MUSE, Contec EDF).
// ctest label `shared`; each test skips with a message when ../shared/clinical is absent.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>

#include "records/ecg_record.hpp"
#include "records/preprocess.hpp"
#include "tests/clinical_support.hpp"

namespace ecgq {
namespace {

// ../shared/clinical beside the source tree (or $ECGQ_SHARED_DIR/clinical).
std::string shared_dir() {
  const char* env = std::getenv("ECGQ_SHARED_DIR");
  return (env ? std::string(env) : std::string(ECGQ_SOURCE_DIR) + "/../shared") + "/clinical";
}

#define SKIP_WITHOUT_SHARED()                                                         \
  if (!std::filesystem::is_directory(shared_dir()))                                   \
  GTEST_SKIP() << shared_dir() << " is absent: the shared sample files are not here " \
               << "(tests/data/clinical holds the permissive ones)"

// What the README says a file is.
struct Sample {
  std::string file;
  std::string format;  // "" = refused
  int64_t leads;
  double fs;
  int64_t samples;
  std::string refusal;  // expected in the refusal message
};

const std::vector<Sample> kSamples = {
    {"dicom/pixelmed_1074466202.fixed_from-SCP-PFE105.dcm", "dicom", 12, 500, 5000, ""},
    {"dicom/pydicom_waveform_ecg.dcm", "dicom", 12, 1000, 10000, ""},
    {"edf/contec_ECG90A_0000050.ECG.edf", "edf", 12, 800, 37855, ""},
    {"edf/physionet_adfecgdb_r01.edf", "edf", 5, 1000, 300000, ""},
    {"ge-muse-xml/braveheart_example1.xml", "ge-muse", 8, 500, 5000, ""},
    {"ge-muse-xml/braveheart_example2.xml", "ge-muse", 8, 500, 5000, ""},
    {"hl7-aecg/fda_hl7-2003-12_Example_aECG.xml", "hl7-aecg", 12, 500, 5000, ""},
    {"hl7-aecg/fda_minimum_aecg.xml", "hl7-aecg", 1, 500, 13, ""},
    {"scp-ecg/ecgtoolkit_Example.scp", "scp-ecg", 12, 500, 5000, ""},
    {"scp-ecg/healforce_Prince180D_62.SCP", "", 0, 0, 0, "not an EN 1064 conforming SCP-ECG file"},
    {"scp-ecg/pixelmed_PFE105.dat", "", 0, 0, 0, "not a record format ecgq reads"},
    {"scp-ecg/pixelmed_PFE105_redred.scp", "scp-ecg", 8, 500, 5000, ""},
    {"scp-ecg/welchallyn_CardioControl_ECG_20170504_163507_123456789.SCP", "scp-ecg", 8, 1e6 / 1667,
     6000, ""},
    {"philips-sierra-xml/sierra_1.03_HeartStartMRx_129DYPRG.XML", "philips", 12, 500, 5500, ""},
    {"philips-sierra-xml/sierra_1.04_PageWriterTouch_3191723_ZZDEMOPTONLY.xml", "philips", 12, 500,
     5500, ""},
};

TEST(ClinicalShared, EveryFileIsReadOrRefusedAsItsReadmeSays) {
  SKIP_WITHOUT_SHARED();
  for (const Sample& s : kSamples) {
    SCOPED_TRACE(s.file);
    auto r = read_record(shared_dir() + "/" + s.file);
    if (s.format.empty()) {
      ASSERT_FALSE(r.ok());
      EXPECT_NE(r.status().message().find(s.refusal), std::string::npos) << r.status().message();
      continue;
    }
    ASSERT_TRUE(r.ok()) << r.status().message();
    EXPECT_EQ(r->format, s.format);
    EXPECT_EQ(r->n_leads(), s.leads);
    EXPECT_DOUBLE_EQ(r->fs, s.fs);
    EXPECT_EQ(r->n_samples, s.samples);
  }
}

TEST(ClinicalShared, MuseFilesStoreEightLeadsAndGetTheFourDerivedLimbLeads) {
  SKIP_WITHOUT_SHARED();
  for (const char* f :
       {"ge-muse-xml/braveheart_example1.xml", "ge-muse-xml/braveheart_example2.xml"}) {
    SCOPED_TRACE(f);
    auto r = read_record(shared_dir() + "/" + f);
    ASSERT_TRUE(r.ok()) << r.status().message();
    EXPECT_EQ(r->leads, (std::vector<std::string>{"I", "II", "V1", "V2", "V3", "V4", "V5", "V6"}));
    EXPECT_EQ(r->units[0], "uV");
    EXPECT_DOUBLE_EQ(r->gains[0], 1 / 4.88);
    EXPECT_EQ(test::derived_leads(*r), (std::vector<std::string>{"III", "aVR", "aVL", "aVF"}));
  }
}

TEST(ClinicalShared, ContecEdfStoresTwelveLeadsThatKeepEinthovensLaw) {
  SKIP_WITHOUT_SHARED();
  auto r = read_record(shared_dir() + "/edf/contec_ECG90A_0000050.ECG.edf");
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->leads, kModelLeads);
  // One digital step is 2000 / 65534 mV; the device rounds each lead on its own.
  EXPECT_LT(test::einthoven_error(*r), 3 * 2000.0 / 65534);
}

TEST(ClinicalShared, PhysionetEdfPlusLeavesTheAnnotationSignalOut) {
  SKIP_WITHOUT_SHARED();
  auto r = read_record(shared_dir() + "/edf/physionet_adfecgdb_r01.edf");
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->leads, (std::vector<std::string>{"Direct_1", "Abdomen_1", "Abdomen_2", "Abdomen_3",
                                                "Abdomen_4"}));
  EXPECT_EQ(r->units[0], "uV");
  EXPECT_TRUE(r->warnings.empty());
}

}  // namespace
}  // namespace ecgq
