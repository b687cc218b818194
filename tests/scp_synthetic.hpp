// A synthetic two-lead SCP-ECG record written as an EN 1064 encoder with reference-beat
// subtraction and (optionally) bimodal compression would write it: residual = rhythm - reference
// beat over each QRS's subtraction zone; bimodal: the residual outside the protected zones
// replaced by means of `factor` samples. Used by test_scp_compression and test_e2e_clinical.
#pragma once

#include <cmath>
#include <string>
#include <vector>

#include "tests/clinical_writers.hpp"

namespace ecgq::test::scp_synthetic {

constexpr uint32_t kSamples = 5000;    // 10 s at 500 Hz
constexpr uint32_t kBeat = 300;        // reference beat samples (600 ms)
constexpr uint32_t kFiducial = 101;    // its fiducial point (1-based)
constexpr uint32_t kBeatAvm = 2500;    // nV per step of the reference beat
constexpr uint32_t kRhythmAvm = 5000;  // nV per step of the residual

// The template beat of lead `l` (0: I, 1: II) in uV at sample i of the reference beat.
inline double beat_uv(int l, double i) {
  const double q = (i - (kFiducial - 1)) / 8.0, tw = (i - (kFiducial - 1) - 70) / 20.0;
  return (l == 0 ? 900.0 : 1400.0) * std::exp(-q * q) +
         (l == 0 ? 150.0 : 250.0) * std::exp(-tw * tw);
}

// Fiducial (1-based sample) of beat k.
inline uint32_t fiducial_of(int k) {
  return 300 + 400 * static_cast<uint32_t>(k);
}
constexpr int kBeats = 12;

// The synthetic rhythm of lead `l` in uV at 1-based sample t: beats that vary a little in size
// from the template, on a slow baseline wander.
inline double rhythm_uv(int l, uint32_t t) {
  double v = 200.0 * std::sin(2 * M_PI * 0.3 * t / 500.0 + l);
  for (int k = 0; k < kBeats; ++k) {
    const double i = static_cast<double>(kFiducial - 1) + t - static_cast<double>(fiducial_of(k));
    if (i > -200 && i < 500) v += (1.0 + 0.02 * k) * beat_uv(l, i);
  }
  return v;
}

// Section 4: subtraction zones fiducial-40..fiducial+120, protected zones fiducial+-30.
inline std::string qrs_section() {
  std::string s = le(kBeat * 2, 2) + le(kFiducial, 2) + le(kBeats, 2);
  for (int k = 0; k < kBeats; ++k)
    s +=
        le(0, 2) + le(fiducial_of(k) - 40, 4) + le(fiducial_of(k), 4) + le(fiducial_of(k) + 120, 4);
  for (int k = 0; k < kBeats; ++k) s += le(fiducial_of(k) - 30, 4) + le(fiducial_of(k) + 30, 4);
  return s;
}

inline bool protected_sample(uint32_t t) {
  for (int k = 0; k < kBeats; ++k)
    if (t + 30 >= fiducial_of(k) && t <= fiducial_of(k) + 30) return true;
  return false;
}

// The residual of lead l in uV at sample t (rhythm minus the reference beat over the zones).
inline double residual_uv(int l, uint32_t t, const std::vector<std::vector<int32_t>>& beat) {
  double v = rhythm_uv(l, t);
  for (int k = 0; k < kBeats; ++k)
    if (t + 40 >= fiducial_of(k) && t <= fiducial_of(k) + 120)
      v -= beat[l][kFiducial - 1 + t - fiducial_of(k)] * (kBeatAvm / 1000.0);
  return v;
}

// Stores the residual outside the protected zones as means of `factor` samples (a remainder
// shorter than `factor` as is), inside them sample by sample, in kRhythmAvm steps.
inline std::vector<int32_t> bimodal(const std::vector<double>& uv, uint32_t factor) {
  std::vector<int32_t> out;
  auto step = [](double v) { return static_cast<int32_t>(std::lround(v * 1000.0 / kRhythmAvm)); };
  uint32_t t = 1;
  while (t <= kSamples) {
    if (protected_sample(t)) {
      out.push_back(step(uv[t - 1]));
      ++t;
      continue;
    }
    uint32_t end = t;
    while (end + 1 <= kSamples && !protected_sample(end + 1)) ++end;
    const uint32_t len = end - t + 1;
    for (uint32_t g = 0; g < len / factor; ++g) {
      double sum = 0;
      for (uint32_t i = 0; i < factor; ++i) sum += uv[t - 1 + g * factor + i];
      out.push_back(step(sum / factor));
    }
    for (uint32_t i = len / factor * factor; i < len; ++i) out.push_back(step(uv[t - 1 + i]));
    t = end + 1;
  }
  return out;
}

// A two-lead (I, II) record with the reference beat subtracted; `factor` > 1 stores the residual
// bimodally compressed at 500 / factor Hz outside the protected zones.
inline std::string compressed_record(uint32_t factor, const std::string& qrs = qrs_section(),
                                     bool subtraction_flag = true) {
  std::vector<std::vector<int32_t>> beat(2), residual(2);
  for (int l = 0; l < 2; ++l) {
    for (uint32_t i = 0; i < kBeat; ++i)
      beat[l].push_back(static_cast<int32_t>(std::lround(beat_uv(l, i) * 1000.0 / kBeatAvm)));
    std::vector<double> uv;
    for (uint32_t t = 1; t <= kSamples; ++t) uv.push_back(residual_uv(l, t, beat));
    residual[l] = bimodal(uv, factor == 1 ? 1 : factor);
  }
  const std::string leads = std::string("\x02", 1) + le(subtraction_flag ? 1 : 0, 1) + le(1, 4) +
                            le(kSamples, 4) + le(1, 1) + le(1, 4) + le(kSamples, 4) +
                            le(2, 1);  // flags: subtraction
  return scp_record(
      {{2, le(19999, 2)},
       {3, leads},
       {4, qrs},
       {5, scp_lead_block(kBeatAvm, 2000, 2, 0, beat)},
       {6, scp_lead_block(kRhythmAvm, 2000 * factor, 1, factor > 1 ? 1 : 0, residual)}});
}

}  // namespace ecgq::test::scp_synthetic
