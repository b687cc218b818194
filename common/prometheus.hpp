// The Prometheus text exposition format (0.0.4): metric families, labelled samples and
// fixed-bucket histograms. Shared by the broker's and the gateway's /metrics.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace ecgq::prometheus {

// Label pairs of one sample, in the order written.
using Labels = std::vector<std::pair<std::string, std::string>>;

// A label value escaped for the format (backslash, quote, newline).
std::string escape_label(const std::string& value);
// A sample value as the format spells it (shortest exact decimal, +Inf, NaN).
std::string number(double value);
// Upper bounds in seconds for durations from a millisecond to five minutes.
const std::vector<double>& duration_buckets();

// Observations counted into fixed buckets (not cumulative: the writer sums them).
struct Histogram {
  std::vector<uint64_t> counts;  // one per bound, then +Inf
  double sum = 0;
  uint64_t count = 0;

  // Counts `value` into the first bucket whose bound is >= it.
  void observe(double value, const std::vector<double>& bounds);
};

// Builds one exposition text.
class TextWriter {
 public:
  // Starts a family: its HELP and TYPE lines (`type` counter, gauge or histogram).
  void family(const std::string& name, const std::string& type, const std::string& help);
  // One sample line.
  void sample(const std::string& name, const Labels& labels, double value);
  // The _bucket, _sum and _count lines of a histogram family's member.
  void histogram(const std::string& name, const Labels& labels, const Histogram& h,
                 const std::vector<double>& bounds);
  // The text so far.
  const std::string& text() const { return out_; }

 private:
  std::string out_;
};

}  // namespace ecgq::prometheus
