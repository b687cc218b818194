// CSV output of `ecgq submit`: one row per record (path, id, status, error_code, error_message,
// n_segments, model_sha256, precision, cached, masked_leads when leads may be masked, one column
// per label, top_labels), optional per-segment rows, with the header written once the labels are
// known.
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
  // `per_segment` adds a `segment` column and one row per segment after each record's row;
  // `snake_names` writes label columns in snake_case ("Sinus rhythm" -> sinus_rhythm);
  // `masked_leads` adds a masked_leads column (the jobs say missing_leads: zero): the leads each
  // record was given to the model as zeros, ';'-separated.
  CsvWriter(std::ostream& out, bool per_segment, bool snake_names = false,
            bool masked_leads = false);
  // Writes (or holds) the rows of one record.
  void write(const std::string& path, const schema::Result& result);
  // Writes the header and any held rows (call once at the end).
  void finish();

 private:
  void header();
  void row(const std::string& path, const schema::Result& result);

  std::ostream& out_;
  bool per_segment_;
  bool snake_names_;
  bool masked_leads_;
  bool header_written_ = false;
  std::vector<std::string> labels_;
  std::vector<std::pair<std::string, schema::Result>> held_;
};

// `text` quoted for CSV when it holds a comma, quote or newline.
std::string csv_field(const std::string& text);
// A column name in snake_case: lower case, runs of other characters as one underscore.
std::string snake_case(const std::string& name);

}  // namespace ecgq::client
