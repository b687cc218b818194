#include "common/prometheus.hpp"

#include <cmath>
#include <cstdio>

namespace ecgq::prometheus {

namespace {

// `{a="x",b="y"}`, or "" without labels.
std::string label_text(const Labels& labels) {
  if (labels.empty()) return "";
  std::string out = "{";
  for (size_t i = 0; i < labels.size(); ++i) {
    if (i > 0) out += ',';
    out += labels[i].first + "=\"" + escape_label(labels[i].second) + '"';
  }
  return out + '}';
}

}  // namespace

std::string escape_label(const std::string& value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    if (c == '\\')
      out += "\\\\";
    else if (c == '"')
      out += "\\\"";
    else if (c == '\n')
      out += "\\n";
    else
      out.push_back(c);
  }
  return out;
}

std::string number(double value) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.15g", value);
  return buf;
}

const std::vector<double>& duration_buckets() {
  static const std::vector<double> b = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                        0.5,   1,      2.5,   5,    10,    30,   60,  300};
  return b;
}

void Histogram::observe(double value, const std::vector<double>& bounds) {
  if (counts.empty()) counts.assign(bounds.size() + 1, 0);
  size_t i = 0;
  while (i < bounds.size() && value > bounds[i]) ++i;
  ++counts[i];
  sum += value;
  ++count;
}

void TextWriter::family(const std::string& name, const std::string& type, const std::string& help) {
  out_ += "# HELP " + name + ' ' + help + "\n# TYPE " + name + ' ' + type + '\n';
}

void TextWriter::sample(const std::string& name, const Labels& labels, double value) {
  out_ += name + label_text(labels) + ' ' + number(value) + '\n';
}

void TextWriter::histogram(const std::string& name, const Labels& labels, const Histogram& h,
                           const std::vector<double>& bounds) {
  uint64_t cumulative = 0;
  Labels with_le = labels;
  with_le.emplace_back("le", "");
  for (size_t i = 0; i < bounds.size(); ++i) {
    cumulative += h.counts.empty() ? 0 : h.counts[i];
    with_le.back().second = number(bounds[i]);
    sample(name + "_bucket", with_le, static_cast<double>(cumulative));
  }
  with_le.back().second = "+Inf";
  sample(name + "_bucket", with_le, static_cast<double>(h.count));
  sample(name + "_sum", labels, h.sum);
  sample(name + "_count", labels, static_cast<double>(h.count));
}

}  // namespace ecgq::prometheus
