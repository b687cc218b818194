// Helpers of the clinical-format tests: physical values of a record's leads and Einthoven checks.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "records/ecg_record.hpp"
#include "records/preprocess.hpp"
#include "records/units.hpp"

namespace ecgq::test {

// Channel `lead` of `r` in mV.
inline std::vector<double> millivolts(const EcgRecord& r, int64_t lead) {
  std::vector<double> out(static_cast<size_t>(r.n_samples));
  const size_t l = static_cast<size_t>(lead);
  const double g = r.gains.empty() ? 1.0 : r.gains[l];
  const double b = r.baselines.empty() ? 0.0 : r.baselines[l];
  const double mv = millivolts_per_unit(r.units.empty() ? "mV" : r.units[l]);
  for (int64_t t = 0; t < r.n_samples; ++t)
    out[static_cast<size_t>(t)] = (r.raw(lead, t) - b) / g * mv;
  return out;
}

// Index of lead `name` in `r`, or -1.
inline int64_t lead_index(const EcgRecord& r, const std::string& name) {
  for (int64_t i = 0; i < r.n_leads(); ++i)
    if (r.leads[static_cast<size_t>(i)] == name) return i;
  return -1;
}

// Largest |III - (II - I)| and |aVR + (I + II) / 2| over the record's first `limit` samples (all
// when 0), in mV.
inline double einthoven_error(const EcgRecord& r, size_t limit = 0) {
  const int64_t i = lead_index(r, "I"), ii = lead_index(r, "II"), iii = lead_index(r, "III"),
                avr = lead_index(r, "aVR");
  EXPECT_TRUE(i >= 0 && ii >= 0 && iii >= 0 && avr >= 0);
  if (i < 0 || ii < 0 || iii < 0 || avr < 0) return INFINITY;
  const auto a = millivolts(r, i), b = millivolts(r, ii), c = millivolts(r, iii),
             d = millivolts(r, avr);
  double worst = 0;
  for (size_t t = 0; t < (limit ? std::min(limit, a.size()) : a.size()); ++t) {
    worst = std::max(worst, std::fabs(c[t] - (b[t] - a[t])));
    worst = std::max(worst, std::fabs(d[t] + (a[t] + b[t]) / 2));
  }
  return worst;
}

// The leads the preprocessing derives for `r` (the record as a job, as the worker sees it); a
// test failure when it refuses the record.
inline std::vector<std::string> derived_leads(const EcgRecord& r) {
  auto job = job_from_record(r);
  EXPECT_TRUE(job.ok()) << job.status().message();
  if (!job.ok()) return {};
  auto raw = raw_from_job(*job);
  EXPECT_TRUE(raw.ok()) << raw.status().message();
  if (!raw.ok()) return {};
  auto p = preprocess_ecg(*raw, PreprocessLimits{});
  EXPECT_TRUE(p.ok()) << p.status().message();
  return p.ok() ? p->derived_leads : std::vector<std::string>{};
}

}  // namespace ecgq::test
