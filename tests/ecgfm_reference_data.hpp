// The upstream ECG-FM reference files of ../shared/ecgfm (tests/data/ecgfm) and how model tests
// compare against them.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "records/npy.hpp"
#include "tests/support/process.hpp"

namespace ecgq::test {

// Path of reference file `name` (e.g. "tiny_finetuned.pt", "input.npy").
inline std::string ref_path(const std::string& name) {
  return data_path("ecgfm/" + name);
}

// The float contents of reference array `name` (empty, with a test failure, when unreadable).
inline std::vector<float> ref_floats(const std::string& name) {
  auto a = read_npy(ref_path(name));
  EXPECT_TRUE(a.ok()) << a.status().to_string();
  return a.ok() ? a->to_float() : std::vector<float>{};
}

// Largest element-wise |a - b|; infinity when the sizes differ or both are empty.
inline double max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  if (a.size() != b.size() || a.empty()) return INFINITY;
  double m = 0;
  for (size_t i = 0; i < a.size(); ++i) m = std::max(m, std::fabs(double(a[i]) - double(b[i])));
  return m;
}

}  // namespace ecgq::test
