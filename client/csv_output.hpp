// CSV output of `ecgq submit`: one row per record (path, status, error_code, one column per label,
// top_labels), optional per-segment rows, with the header written once the labels are known.
#pragma once

#include <ostream>
#include <string>
#include <vector>

#include "protocol/schema.hpp"

namespace ecgq::client {

// A label is listed in top_labels when its probability reaches this.
inline constexpr float kTopLabelThreshold = 0.5f;

// Writes CSV rows to a stream; rows seen before any result carries labels are held back, since
// the header (which names the label columns) must come first.
class CsvWriter {
 public:
  // `per_segment` adds a `segment` column and one row per segment after each record's row.
  CsvWriter(std::ostream& out, bool per_segment);
  // Writes (or holds) the rows of one record.
  void write(const std::string& path, const schema::Result& result);
  // Writes the header and any held rows (call once at the end).
  void finish();

 private:
  void header();
  void row(const std::string& path, const schema::Result& result);

  std::ostream& out_;
  bool per_segment_;
  bool header_written_ = false;
  std::vector<std::string> labels_;
  std::vector<std::pair<std::string, schema::Result>> held_;
};

// `text` quoted for CSV when it holds a comma, quote or newline.
std::string csv_field(const std::string& text);

}  // namespace ecgq::client
