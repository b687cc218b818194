// CSV and .npy records (read_csv_record, read_npy_record of ecg_record.hpp).
#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <sstream>
#include <type_traits>

#include "records/ecg_record.hpp"
#include "records/lead_names.hpp"
#include "records/npy.hpp"

namespace ecgq {

namespace {

std::string base_name(const std::string& path) {
  const size_t slash = path.rfind('/');
  std::string base = slash == std::string::npos ? path : path.substr(slash + 1);
  const size_t dot = base.rfind('.');
  return dot == std::string::npos || dot == 0 ? base : base.substr(0, dot);
}

bool parse_number(const std::string& s, double* out) {
  if (s.empty()) return false;
  errno = 0;
  char* end = nullptr;
  *out = std::strtod(s.c_str(), &end);
  return errno == 0 && end == s.c_str() + s.size();
}

std::string unquote(const std::string& s) {
  std::string t = s;
  size_t b = t.find_first_not_of(" \t\r");
  size_t e = t.find_last_not_of(" \t\r");
  t = b == std::string::npos ? "" : t.substr(b, e - b + 1);
  if (t.size() >= 2 && (t.front() == '"' || t.front() == '\'') && t.back() == t.front())
    t = t.substr(1, t.size() - 2);
  return t;
}

std::vector<std::string> split_fields(const std::string& line, char delim) {
  std::vector<std::string> out;
  if (delim == ' ') {
    std::istringstream is(line);
    std::string tok;
    while (is >> tok) out.push_back(unquote(tok));
    return out;
  }
  std::string field;
  std::istringstream is(line);
  while (std::getline(is, field, delim)) out.push_back(unquote(field));
  if (!line.empty() && line.back() == delim) out.push_back("");
  return out;
}

// Seconds per unit of a time column name, 0 when the column is not a time column.
double time_column_scale(const std::string& lower) {
  static const char* const kSeconds[] = {"time",    "t",   "time_s", "time (s)", "time[s]",
                                         "seconds", "sec", "s",      "time_sec"};
  static const char* const kMillis[] = {"time_ms",  "ms",           "time (ms)",
                                        "time[ms]", "timestamp_ms", "milliseconds"};
  for (const char* n : kSeconds)
    if (lower == n) return 1.0;
  for (const char* n : kMillis)
    if (lower == n) return 1e-3;
  return 0;
}

bool is_fs_column(const std::string& lower) {
  return lower == "fs" || lower == "sampling_rate" || lower == "sample_rate" ||
         lower == "sampling_frequency" || lower == "frequency" || lower == "hz";
}

bool is_index_column(const std::string& lower) {
  return lower.empty() || lower == "sample" || lower == "index" || lower == "idx" || lower == "n" ||
         lower == "unnamed: 0" || lower == "sample_index";
}

// "fs: 500", "fs=500 Hz", "sampling rate: 500" in a comment line; 0 when absent.
double fs_from_comment(const std::string& comment) {
  const std::string l = lower_trimmed(comment);
  static const char* const kKeys[] = {
      "fs",          "sampling_rate",      "sample_rate", "sampling rate",
      "sample rate", "sampling_frequency", "frequency"};
  for (const char* k : kKeys) {
    const std::string key(k);
    if (l.rfind(key, 0) != 0) continue;
    std::string rest = l.substr(key.size());
    const size_t sep = rest.find_first_of(":=");
    if (sep == std::string::npos || rest.find_first_not_of(" \t") != sep) continue;
    rest = rest.substr(sep + 1);
    char* end = nullptr;
    const double v = std::strtod(rest.c_str(), &end);
    if (end != rest.c_str() && v > 0 && std::isfinite(v)) return v;
  }
  return 0;
}

// Rates derived from time stamps carry rounding noise (500.00000001); snap to 1 mHz.
double snap_rate(double fs) {
  const double r = std::round(fs * 1000) / 1000;
  return std::abs(r - fs) <= 1e-6 * fs ? r : fs;
}

}  // namespace

namespace {

// The cells of a CSV-like file.
struct CsvTable {
  bool has_header = false;
  std::vector<std::string> header;  // column names, when the first row is not all numbers
  std::vector<std::vector<double>> columns;
  int64_t rows = 0;
  double fs_comment = 0;              // from a "# fs: 500" comment
  std::vector<std::string> comments;  // the comment lines, unquoted
};

// Reads the rows of `path`: the delimiter is guessed from the first row (tab, ';', ',' or ' '),
// empty cells read as NaN.
Expected<CsvTable> read_csv_table(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status(ErrorCode::NotFound, "cannot open " + path, "path");
  CsvTable t;
  char delim = 0;
  std::string line;
  int64_t line_no = 0;
  while (std::getline(in, line)) {
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    // Blank lines (any whitespace) are skipped before the delimiter is chosen from a line.
    if (line.find_first_not_of(" \t\v\f") == std::string::npos) continue;
    if (line[line.find_first_not_of(" \t\v\f")] == '#') {
      const std::string c = line.substr(line.find('#') + 1);
      if (const double f = fs_from_comment(c); f > 0) t.fs_comment = f;
      t.comments.push_back(unquote(c));
      continue;
    }
    if (delim == 0) {
      const size_t commas = std::count(line.begin(), line.end(), ',');
      const size_t semis = std::count(line.begin(), line.end(), ';');
      const size_t tabs = std::count(line.begin(), line.end(), '\t');
      delim = tabs > commas && tabs > semis ? '\t' : semis > commas ? ';' : commas ? ',' : ' ';
    }
    std::vector<std::string> fields = split_fields(line, delim);
    // Found by fuzz_records: a row of no fields before the header left every column empty.
    if (fields.empty()) continue;
    if (t.columns.empty() && !t.has_header) {
      double v;
      for (const auto& f : fields) t.has_header = t.has_header || !parse_number(f, &v);
      t.columns.resize(fields.size());
      if (t.has_header) {
        t.header = fields;
        continue;
      }
    }
    if (fields.size() != t.columns.size())
      return Status(ErrorCode::BadRecord,
                    path + ": line " + std::to_string(line_no) + " has " +
                        std::to_string(fields.size()) + " fields; expected " +
                        std::to_string(t.columns.size()),
                    "path");
    for (size_t c = 0; c < fields.size(); ++c) {
      double v = std::numeric_limits<double>::quiet_NaN();
      if (!fields[c].empty() && !parse_number(fields[c], &v))
        return Status(ErrorCode::BadRecord,
                      path + ": line " + std::to_string(line_no) + " column " +
                          std::to_string(c + 1) + ": '" + fields[c] + "' is not a number",
                      "path");
      t.columns[c].push_back(v);
    }
    ++t.rows;
  }
  if (t.rows == 0) return Status(ErrorCode::BadRecord, path + ": no data rows", "path");
  return t;
}

// The signal columns of a table, and the sample rate it gives itself (an fs column, a
// "# fs:" comment or a time column, in that order; 0 when none).
struct CsvSignals {
  std::vector<size_t> columns;
  double fs = 0;
};

CsvSignals csv_signals(const CsvTable& t) {
  CsvSignals out;
  double fs_column = 0, fs_time = 0;
  for (size_t c = 0; c < t.columns.size(); ++c) {
    const std::string name = t.has_header ? lower_trimmed(t.header[c]) : "";
    if (t.has_header && is_fs_column(name)) {
      fs_column = t.columns[c][0];
    } else if (const double scale = t.has_header ? time_column_scale(name) : 0; scale > 0) {
      const double span = (t.columns[c].back() - t.columns[c].front()) * scale;
      if (t.rows > 1 && span > 0) fs_time = snap_rate(static_cast<double>(t.rows - 1) / span);
    } else if (t.has_header && is_index_column(name)) {
      continue;
    } else {
      out.columns.push_back(c);
    }
  }
  out.fs = fs_column > 0 ? fs_column : t.fs_comment > 0 ? t.fs_comment : fs_time;
  return out;
}

}  // namespace

Expected<EcgRecord> read_csv_record(const std::string& path, const ReadOptions& options) {
  ASSIGN_OR_RETURN(CsvTable table, read_csv_table(path));
  EcgRecord r;
  r.path = path;
  r.name = base_name(path);
  r.format = "csv";
  r.comments = std::move(table.comments);
  const CsvSignals signals = csv_signals(table);
  if (options.fs > 0) {
    if (signals.fs > 0 && std::abs(signals.fs - options.fs) > 1e-9 * options.fs)
      r.warnings.push_back("sample rate " + std::to_string(signals.fs) +
                           " Hz from the file overridden by " + std::to_string(options.fs) + " Hz");
    r.fs = options.fs;
  } else if (signals.fs > 0 && std::isfinite(signals.fs)) {
    r.fs = signals.fs;
  } else {
    return Status(ErrorCode::BadRequest,
                  path +
                      ": no sample rate (no fs/time column or '# fs: N' comment); pass it "
                      "(--fs)",
                  "fs");
  }
  if (signals.columns.empty())
    return Status(ErrorCode::BadRecord, path + ": no signal columns", "path");
  if (table.has_header) {
    for (size_t c : signals.columns) r.leads.push_back(table.header[c]);
  } else {
    auto names = channel_names(static_cast<int64_t>(signals.columns.size()), options, &r.warnings);
    if (!names.ok())
      return Status(names.status().code(), path + ": " + names.status().message(), "leads");
    r.leads = names.value();
  }
  r.n_samples = table.rows;
  r.dtype = "f64";
  r.f64.reserve(signals.columns.size() * static_cast<size_t>(table.rows));
  for (size_t c : signals.columns)
    r.f64.insert(r.f64.end(), table.columns[c].begin(), table.columns[c].end());
  r.units.assign(r.leads.size(), options.units.empty() ? "mV" : options.units);
  return r;
}

Expected<EcgRecord> read_npy_record(const std::string& path, const ReadOptions& options) {
  ASSIGN_OR_RETURN(auto arr, read_npy(path));
  std::vector<int64_t> shape = arr.shape;
  while (shape.size() > 2 && shape[0] == 1) shape.erase(shape.begin());
  if (shape.size() != 2)
    return Status(ErrorCode::BadRecord,
                  path + ": expected a 2-D array [leads, samples] or [samples, leads]; got shape " +
                      arr.shape_string(),
                  "path");
  if (arr.dtype == "bool")
    return Status(ErrorCode::BadRecord, path + ": boolean arrays are not ECG data", "path");
  if (options.fs <= 0)
    return Status(ErrorCode::BadRequest,
                  path + ": a .npy file carries no sample rate; pass it (--fs)", "fs");
  // Which axis holds the leads: the one matching the given names, else the shorter one.
  bool leads_first = shape[0] <= shape[1];
  const int64_t named = static_cast<int64_t>(options.leads.size());
  if (named > 0 && shape[0] != shape[1]) {
    if (shape[0] == named)
      leads_first = true;
    else if (shape[1] == named)
      leads_first = false;
  }
  EcgRecord r;
  r.path = path;
  r.name = base_name(path);
  r.format = "npy";
  r.fs = options.fs;
  const int64_t n_leads = leads_first ? shape[0] : shape[1];
  r.n_samples = leads_first ? shape[1] : shape[0];
  auto names = channel_names(n_leads, options, &r.warnings);
  if (!names.ok())
    return Status(names.status().code(), path + ": " + names.status().message(), "leads");
  r.leads = names.value();
  r.units.assign(static_cast<size_t>(n_leads), options.units.empty() ? "mV" : options.units);
  const std::vector<double> values = arr.to_double();  // C order
  auto at = [&](int64_t l, int64_t t) {
    return values[static_cast<size_t>(leads_first ? l * r.n_samples + t : t * n_leads + l)];
  };
  const size_t total = static_cast<size_t>(n_leads * r.n_samples);
  auto fill = [&](auto* dst) {
    dst->resize(total);
    for (int64_t l = 0; l < n_leads; ++l)
      for (int64_t t = 0; t < r.n_samples; ++t)
        (*dst)[static_cast<size_t>(l * r.n_samples + t)] =
            static_cast<typename std::decay_t<decltype(*dst)>::value_type>(at(l, t));
  };
  if (arr.dtype == "i16") {
    r.dtype = "i16";
    fill(&r.i16);
  } else if (arr.dtype == "f32") {
    r.dtype = "f32";
    fill(&r.f32);
  } else {
    r.dtype = "f64";
    fill(&r.f64);
  }
  return r;
}

}  // namespace ecgq
