// SCP-ECG reference-beat subtraction and bimodal compression, on records written here: a
// synthetic two-lead ECG is encoded as an EN 1064 encoder would (residual = rhythm - reference
// beat over each QRS's subtraction zone; bimodal: the residual outside the protected zones
// replaced by means of `factor` samples) and must read back as the original within quantization
// (and, outside the protected zones, within what the decimation loses).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <fstream>

#include "records/clinical_readers.hpp"
#include "tests/clinical_support.hpp"
#include "tests/clinical_writers.hpp"
#include "tests/scp_synthetic.hpp"

namespace ecgq {
namespace {

using namespace test::scp_synthetic;
using test::le;

// Largest |read - synthetic| in uV over the samples `which` selects.
template <typename Which>
double worst_uv(const EcgRecord& r, Which which) {
  double worst = 0;
  for (int l = 0; l < 2; ++l) {
    const auto mv = test::millivolts(r, l);
    for (uint32_t t = 1; t <= kSamples; ++t)
      if (which(t)) worst = std::max(worst, std::fabs(mv[t - 1] * 1000.0 - rhythm_uv(l, t)));
  }
  return worst;
}

// ECGQ_SCP_SEED_DIR=DIR writes the records these tests read as fuzz seeds
// (tests/fuzz/corpus/fuzz_scp: reference_beat_subtracted, bimodal_factor_2).
void write_seed(const std::string& name, const std::string& bytes) {
  if (const char* dir = std::getenv("ECGQ_SCP_SEED_DIR"))
    std::ofstream(std::string(dir) + "/" + name, std::ios::binary) << bytes;
}

TEST(ScpCompression, ReferenceBeatIsAddedBackAtEveryQrs) {
  write_seed("reference_beat_subtracted", compressed_record(1));
  write_seed("bimodal_factor_2", compressed_record(2));
  auto r = read_scp(compressed_record(1), "subtracted.scp");
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->leads, (std::vector<std::string>{"I", "II"}));
  EXPECT_DOUBLE_EQ(r->fs, 500);
  ASSERT_EQ(r->n_samples, kSamples);
  // One residual step (5 uV) rounded, plus the beat's own rounding (1.25 uV).
  EXPECT_LE(worst_uv(*r, [](uint32_t) { return true; }), 2.5 + 1.25 + 1e-6);
  // The same file whose section 3 does not say so reads as the residual: off by a QRS's height.
  auto residual = read_scp(compressed_record(1, qrs_section(), false), "residual.scp");
  ASSERT_TRUE(residual.ok()) << residual.status().message();
  EXPECT_GT(worst_uv(*residual, [](uint32_t) { return true; }), 900);
}

TEST(ScpCompression, BimodalResidualIsRebuiltAtTheReferenceBeatRate) {
  for (uint32_t factor : {2u, 4u}) {
    auto r = read_scp(compressed_record(factor), "bimodal.scp");
    ASSERT_TRUE(r.ok()) << r.status().message();
    EXPECT_DOUBLE_EQ(r->fs, 500) << "section 6 says " << 500 / factor << " Hz";
    ASSERT_EQ(r->n_samples, kSamples);
    EXPECT_LE(worst_uv(*r, protected_sample), 2.5 + 1.25 + 1e-6) << factor;
    // Outside the protected zones: what linear interpolation of `factor`-sample means loses on
    // the slow waves (a few uV), far below the signal.
    EXPECT_LE(worst_uv(*r, [](uint32_t t) { return !protected_sample(t); }), 12.0) << factor;
  }
}

TEST(ScpCompression, InconsistentZonesAndRatesAreRefusedNamingTheSection) {
  // A QRS whose subtraction zone reaches past the reference beat.
  std::string qrs = qrs_section();
  const size_t first_end = 6 + 10;  // QRS 1's SE
  qrs.replace(first_end, 4, le(fiducial_of(0) + 250, 4));
  auto r = read_scp(compressed_record(1, qrs), "zone.scp");
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(r.status().is(ErrorCode::BadRecord));
  EXPECT_NE(r.status().message().find("section 4: QRS 1: subtraction zone"), std::string::npos)
      << r.status().message();
  // Protected zones out of order.
  qrs = qrs_section();
  qrs.replace(6 + 14 * kBeats + 8, 4, le(10, 4));
  r = read_scp(compressed_record(2, qrs), "order.scp");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("section 4: QRS 2: protected zone"), std::string::npos)
      << r.status().message();
  // Bimodal without its QRS locations.
  std::string bytes = compressed_record(2, "");
  r = read_scp(bytes, "short4.scp");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("section 4"), std::string::npos) << r.status().message();
}

}  // namespace
}  // namespace ecgq
