#include "client/csv_output.hpp"

#include <cctype>
#include <cstdio>

#include "common/text.hpp"

namespace ecgq::client {

namespace {

std::string number(float f) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.7g", static_cast<double>(f));
  return buf;
}

}  // namespace

std::string csv_field(const std::string& raw) {
  const std::string text = escape_invalid_utf8(raw);
  if (text.find_first_of(",\"\r\n") == std::string::npos) return text;
  std::string q = "\"";
  for (char c : text) {
    if (c == '"') q += '"';
    q += c;
  }
  return q + "\"";
}

std::string snake_case(const std::string& name) {
  std::string out;
  for (unsigned char c : name) {
    if (std::isalnum(c)) {
      out += static_cast<char>(std::tolower(c));
    } else if (!out.empty() && out.back() != '_') {
      out += '_';
    }
  }
  while (!out.empty() && out.back() == '_') out.pop_back();
  return out;
}

CsvWriter::CsvWriter(std::ostream& out, bool per_segment, bool snake_names, bool masked_leads)
    : out_(out),
      per_segment_(per_segment),
      snake_names_(snake_names),
      masked_leads_(masked_leads) {}

void CsvWriter::write(const std::string& path, const schema::Result& result) {
  if (!header_written_) {
    if (result.labels.empty()) {
      held_.emplace_back(path, result);
      return;
    }
    labels_ = result.labels;
    header();
    for (const auto& [p, r] : held_) row(p, r);
    held_.clear();
  }
  row(path, result);
  out_.flush();
}

void CsvWriter::finish() {
  if (!header_written_) header();
  for (const auto& [p, r] : held_) row(p, r);
  held_.clear();
  out_.flush();
}

void CsvWriter::header() {
  out_ << "path";
  if (per_segment_) out_ << ",segment";
  out_ << ",id,status,error_code,error_message,n_segments,model_sha256,precision,cached";
  if (masked_leads_) out_ << ",masked_leads";
  for (const auto& l : labels_) out_ << ',' << csv_field(snake_names_ ? snake_case(l) : l);
  out_ << ",top_labels\n";
  header_written_ = true;
}

void CsvWriter::row(const std::string& path, const schema::Result& r) {
  // One line of probabilities (a record's or a segment's) with its top labels.
  auto line = [&](const std::string& segment, const float* probs, size_t n) {
    out_ << csv_field(path);
    if (per_segment_) out_ << ',' << segment;
    out_ << ',' << csv_field(r.id) << ',' << r.status << ','
         << (r.error ? csv_field(r.error->code) : "") << ','
         << (r.error ? csv_field(r.error->message) : "") << ',';
    if (r.n_segments > 0) out_ << r.n_segments;
    out_ << ',' << csv_field(r.model.sha256) << ',' << csv_field(r.model.precision) << ','
         << (r.status == "ok" ? (r.cached ? "true" : "false") : "");
    if (masked_leads_) {
      std::string masked;
      for (const auto& l : r.masked_leads) masked += (masked.empty() ? "" : ";") + l;
      out_ << ',' << csv_field(masked);
    }
    std::string top;
    for (size_t i = 0; i < labels_.size(); ++i) {
      out_ << ',';
      if (probs != nullptr && i < n && r.labels == labels_) {
        out_ << number(probs[i]);
        if (probs[i] >= kTopLabelThreshold) top += (top.empty() ? "" : ";") + labels_[i];
      }
    }
    out_ << ',' << csv_field(top) << '\n';
  };
  line("", r.probs.empty() ? nullptr : r.probs.data(), r.probs.size());
  if (!per_segment_ || !r.segment_probs) return;
  const schema::TypedArray& a = *r.segment_probs;
  if (a.dtype != "f32" || a.shape.size() != 2) return;
  const auto* data = reinterpret_cast<const float*>(a.data.data());
  for (int64_t s = 0; s < a.shape[0]; ++s) {
    line(std::to_string(s), data + s * a.shape[1], static_cast<size_t>(a.shape[1]));
  }
}

}  // namespace ecgq::client
