// Format detection, WFDB and MATLAB v4 records, and jobs from records. CSV and .npy readers are in
// ecg_tabular.cpp.
#include "records/ecg_record.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <limits>
#include <optional>
#include <sstream>

#include "records/clinical_io.hpp"
#include "records/clinical_readers.hpp"
#include "records/lead_names.hpp"
#include "records/preprocess.hpp"
#include "records/record_format.hpp"
#include "records/units.hpp"

namespace ecgq {

namespace {

bool is_file(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

bool is_dir(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

std::string dir_of(const std::string& path) {
  const size_t slash = path.rfind('/');
  return slash == std::string::npos ? "" : path.substr(0, slash);
}

std::string base_of(const std::string& path) {
  const size_t slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

std::string stem_path(const std::string& path) {
  const std::string base = base_of(path);
  const size_t dot = base.rfind('.');
  if (dot == std::string::npos || dot == 0) return path;
  return path.substr(0, path.size() - (base.size() - dot));
}

bool starts_with_ci(const std::string& s, const std::string& prefix) {
  return lower_trimmed(s).rfind(prefix, 0) == 0;
}

// source_labels from header comments: Challenge "#Dx:" SNOMED codes, else the free text.
std::vector<std::string> labels_from_comments(const std::vector<std::string>& comments) {
  std::vector<std::string> dx;
  for (const std::string& c : comments) {
    if (!starts_with_ci(c, "dx:")) continue;
    std::stringstream ss(c.substr(c.find(':') + 1));
    std::string code;
    while (std::getline(ss, code, ',')) {
      code = lower_trimmed(code);
      if (!code.empty()) dx.push_back("Dx:" + code);
    }
  }
  if (!dx.empty()) return dx;
  std::vector<std::string> text;
  for (const std::string& c : comments) {
    const std::string l = lower_trimmed(c);
    static const char* const kSkip[] = {"age", "<age>", "sex", "<sex>",   "<diagnoses>",
                                        "rx:", "hx:",   "sx:", "ecg date"};
    bool skip = false;
    for (const char* k : kSkip) skip = skip || l.rfind(k, 0) == 0;
    if (!skip) text.push_back(c);
  }
  return text;
}

Status with_path(const Status& s, const std::string& path) {
  if (s.message().rfind(path, 0) == 0) return s;
  return s.with_context(path);
}

}  // namespace

double EcgRecord::raw(int64_t lead, int64_t t) const {
  const size_t i = static_cast<size_t>(lead * n_samples + t);
  if (dtype == "i16") return i16[i];
  if (dtype == "f32") return f32[i];
  return f64[i];
}

Expected<std::vector<std::string>> channel_names(int64_t n, const ReadOptions& options,
                                                 std::vector<std::string>* warnings) {
  if (!options.leads.empty()) {
    if (static_cast<int64_t>(options.leads.size()) != n)
      return Status(ErrorCode::BadRequest,
                    std::to_string(options.leads.size()) + " lead names given for " +
                        std::to_string(n) + " channels",
                    "leads");
    return options.leads;
  }
  if (n == 12) {
    warnings->push_back(
        "no lead names in the file; assuming the order I, II, III, aVR, aVL, "
        "aVF, V1-V6");
    return kModelLeads;
  }
  return Status(ErrorCode::BadRequest,
                std::to_string(n) + " channels and no lead names; pass the lead names (--leads)",
                "leads");
}

Expected<EcgRecord> read_wfdb_record(const std::string& header_path, const ReadOptions& options) {
  ASSIGN_OR_RETURN(auto header, wfdb::read_header(header_path));
  auto signals = wfdb::read_signals(header, dir_of(header_path), options.checksums);
  if (!signals.ok()) return with_path(signals.status(), header_path);
  const wfdb::Header& h = header;
  EcgRecord r;
  r.path = header_path;
  r.name = base_of(stem_path(header_path));
  r.format = "wfdb";
  r.fs = h.fs;
  r.n_samples = signals->n_samples;
  for (const auto& s : h.signals) {
    r.leads.push_back(s.description);
    r.gains.push_back(s.gain);
    r.baselines.push_back(s.baseline);
    r.units.push_back(s.units.empty() ? "mV" : s.units);
    if (!s.gain_given) r.warnings.push_back(s.description + ": no gain in the header; using 200");
  }
  clinical::store_adc(&r, signals->samples);
  r.comments = h.comments;
  r.source_labels = labels_from_comments(h.comments);
  for (auto& w : signals->warnings) r.warnings.push_back(std::move(w));
  if (options.fs > 0 && options.fs != r.fs) {
    r.warnings.push_back("sample rate " + std::to_string(r.fs) +
                         " Hz from the header overridden by " + std::to_string(options.fs) + " Hz");
    r.fs = options.fs;
  }
  return r;
}

namespace {

// One real matrix of a MATLAB v4 file.
struct MatMatrix {
  std::string name;
  int type;  // precision digit P of the MOPT type: 0 f64, 1 f32, 2 i32, 3 i16, 4 u16, 5 u8
  int64_t rows, cols;
  size_t offset;  // of the first element in the file
};

// The real numeric matrices of a little-endian MATLAB v4 file (text and sparse ones are skipped).
Expected<std::vector<MatMatrix>> mat_v4_matrices(const std::string& bytes,
                                                 const std::string& path) {
  static const int kSize[] = {8, 4, 4, 2, 2, 1};
  std::vector<MatMatrix> matrices;
  size_t pos = 0;
  while (pos + 20 <= bytes.size()) {
    int32_t hdr[5];
    std::memcpy(hdr, bytes.data() + pos, 20);
    const int type = hdr[0], m = type / 1000, p = (type / 10) % 10, t = type % 10;
    if (type < 0 || type > 9999 || m != 0 || p > 5 || hdr[1] < 0 || hdr[2] < 0 || hdr[4] <= 0 ||
        hdr[3] != 0)
      return Status(ErrorCode::BadRecord,
                    path +
                        ": not a little-endian MATLAB v4 file of real matrices (matrix header at "
                        "byte " +
                        std::to_string(pos) + ")",
                    "path");
    const size_t name_at = pos + 20;
    const size_t data_at = name_at + static_cast<size_t>(hdr[4]);
    const size_t room = bytes.size() > data_at ? bytes.size() - data_at : 0;
    auto past_the_end = [&] {
      return Status(ErrorCode::BadRecord, path + ": MATLAB v4 matrix runs past the end of the file",
                    "path");
    };
    if (hdr[1] > 0 && static_cast<size_t>(hdr[2]) > room / kSize[p] / static_cast<size_t>(hdr[1]))
      return past_the_end();
    const size_t data_len = static_cast<size_t>(hdr[1]) * static_cast<size_t>(hdr[2]) * kSize[p];
    if (data_at + data_len > bytes.size()) return past_the_end();
    std::string name = bytes.substr(name_at, static_cast<size_t>(hdr[4]));
    name = name.substr(0, name.find('\0'));
    if (t == 0) matrices.push_back({name, p, hdr[1], hdr[2], data_at});
    pos = data_at + data_len;
  }
  return matrices;
}

// Copies matrix `mat` (column-major rows x cols; the shorter side is the leads, as in the
// Challenge files' leads x samples) into `r` lead-major, in the narrowest dtype that holds it.
void store_mat_samples(const std::string& bytes, const MatMatrix& mat, EcgRecord& r) {
  const bool leads_are_rows = mat.rows <= mat.cols;
  const int64_t n_leads = r.n_leads();
  const char* base = bytes.data() + mat.offset;
  const size_t total = static_cast<size_t>(n_leads * r.n_samples);
  auto index = [&](int64_t l, int64_t t) {
    return static_cast<size_t>(leads_are_rows ? t * mat.rows + l : l * mat.rows + t);
  };
  auto fill = [&](auto* dst, auto sample_type) {
    using S = decltype(sample_type);
    dst->resize(total);
    for (int64_t l = 0; l < n_leads; ++l)
      for (int64_t t = 0; t < r.n_samples; ++t) {
        S v;
        std::memcpy(&v, base + index(l, t) * sizeof(S), sizeof(S));
        (*dst)[static_cast<size_t>(l * r.n_samples + t)] = v;
      }
  };
  switch (mat.type) {
    case 0:
      r.dtype = "f64";
      fill(&r.f64, double{});
      break;
    case 1:
      r.dtype = "f32";
      fill(&r.f32, float{});
      break;
    case 2:
      r.dtype = "f64";
      fill(&r.f64, int32_t{});
      break;
    case 3:
      r.dtype = "i16";
      fill(&r.i16, int16_t{});
      break;
    case 4:
      r.dtype = "f32";
      fill(&r.f32, uint16_t{});
      break;
    default:
      r.dtype = "i16";
      fill(&r.i16, uint8_t{});
      break;
  }
}

}  // namespace

Expected<EcgRecord> read_mat_v4(const std::string& path, const ReadOptions& options) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status(ErrorCode::NotFound, "cannot open " + path, "path");
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (bytes.size() >= 116 && bytes.compare(0, 6, "MATLAB") == 0)
    return Status(ErrorCode::UnsupportedFormat,
                  path +
                      ": MATLAB v5/v7 .mat files are not supported (only v4 files such as the "
                      "PhysioNet Challenge ones); convert it to .npy, CSV or WFDB",
                  "path");
  ASSIGN_OR_RETURN(const auto matrices, mat_v4_matrices(bytes, path));
  const MatMatrix* mat = nullptr;
  for (const auto& m : matrices)
    if (m.name == "val") mat = &m;
  if (!mat && matrices.size() == 1) mat = &matrices[0];
  if (!mat)
    return Status(
        ErrorCode::BadRecord,
        path + ": no `val` matrix (found " + std::to_string(matrices.size()) + " numeric matrices)",
        "path");
  if (options.fs <= 0)
    return Status(ErrorCode::BadRequest,
                  path +
                      ": a .mat file without a WFDB header carries no sample rate; pass it "
                      "(--fs)",
                  "fs");
  const bool leads_are_rows = mat->rows <= mat->cols;
  const int64_t n_leads = leads_are_rows ? mat->rows : mat->cols;
  EcgRecord r;
  r.path = path;
  r.name = base_of(stem_path(path));
  r.format = "mat";
  r.fs = options.fs;
  r.n_samples = leads_are_rows ? mat->cols : mat->rows;
  auto names = channel_names(n_leads, options, &r.warnings);
  if (!names.ok()) return with_path(names.status(), path);
  r.leads = std::move(names).value();
  r.units.assign(static_cast<size_t>(n_leads), options.units.empty() ? "mV" : options.units);
  store_mat_samples(bytes, *mat, r);
  r.warnings.push_back("no WFDB header: sample values used as they are (no gain or baseline)");
  return r;
}

namespace {

// The clinical format `path` holds by its content (or its extension when that names one), read;
// nullopt when the content is none of them and the extension names none.
// A clinical file carries its sample rate: an `fs` option that differs from it is an error
// naming both (bad_request, field fs), never silently ignored or applied.
Status check_own_rate(const EcgRecord& r, double fs) {
  if (!(fs > 0) || std::fabs(fs - r.fs) <= 1e-6 * r.fs) return Status::Ok();
  char buf[200];
  std::snprintf(buf, sizeof buf,
                ": the %s file records %.6g Hz but fs (--fs) says %.6g Hz; files that carry "
                "their sample rate keep it (leave fs out)",
                r.format.c_str(), r.fs, fs);
  return Status(ErrorCode::BadRequest, r.path + buf, "fs");
}

std::optional<Expected<EcgRecord>> read_by_content(const std::string& path,
                                                   const RecordExtension* known) {
  std::string head(4096, '\0');
  {
    std::ifstream in(path, std::ios::binary);
    in.read(head.data(), static_cast<std::streamsize>(head.size()));
    head.resize(static_cast<size_t>(in.gcount()));
  }
  const std::string ext = record_extension(path);
  auto format = detect_record_format(head, ext);
  if (!format && known && known->format != RecordFormat::Mat) format = known->format;
  if (!format) return std::nullopt;
  if (*format == RecordFormat::Xml)
    return Status(ErrorCode::UnsupportedFormat,
                  path + ": XML root element <" + xml_root_element(head) +
                      "> is not an ECG format ecgq reads (AnnotatedECG, RestingECG, "
                      "restingecgdata)",
                  "path");
  using Reader = Expected<EcgRecord> (*)(const std::string&, const std::string&);
  static const std::pair<RecordFormat, Reader> kReaders[] = {
      {RecordFormat::Edf, read_edf},         {RecordFormat::Hl7Aecg, read_hl7_aecg},
      {RecordFormat::GeMuse, read_ge_muse},  {RecordFormat::Dicom, read_dicom},
      {RecordFormat::Philips, read_philips}, {RecordFormat::Scp, read_scp},
  };
  Reader reader = nullptr;
  for (const auto& [f, r] : kReaders)
    if (f == *format) reader = r;
  if (!reader)
    return Status(ErrorCode::UnsupportedFormat,
                  path + ": " + record_format_name(*format) + " files are not read yet", "path");
  auto bytes = clinical::read_file(path);
  if (!bytes.ok()) return bytes.status();
  return reader(*bytes, path);
}

}  // namespace

Expected<EcgRecord> read_record(const std::string& path, const ReadOptions& options) {
  if (is_dir(path))
    return Status(ErrorCode::UnsupportedFormat, path + " is a directory, not a record", "path");
  const RecordExtension* known = find_record_extension(record_extension(path));
  const std::string header = stem_path(path) + ".hea";
  if (known && known->format == RecordFormat::WfdbHeader) {
    if (!is_file(path)) return Status(ErrorCode::NotFound, path + " does not exist", "path");
    return read_wfdb_record(path, options);
  }
  if (!is_file(path)) {
    if (is_file(path + ".hea")) return read_wfdb_record(path + ".hea", options);
    return Status(ErrorCode::NotFound, path + " does not exist", "path");
  }
  if (known && known->format == RecordFormat::Npy) return read_npy_record(path, options);
  if (known && known->format == RecordFormat::Tabular) return read_csv_record(path, options);
  if (is_file(header)) {
    // A signal file (.dat, .mat, .xyz, ...) read through the header next to it when that header
    // names it.
    auto h = wfdb::read_header(header);
    if (h.ok())
      for (const auto& s : h->signals)
        if (s.file_name == base_of(path)) return read_wfdb_record(header, options);
  }
  auto clinical = read_by_content(path, known);
  if (clinical && clinical->ok()) RETURN_IF_ERROR(check_own_rate(**clinical, options.fs));
  if (clinical) return std::move(*clinical);
  if (known && known->format == RecordFormat::Mat) return read_mat_v4(path, options);
  return Status(ErrorCode::UnsupportedFormat,
                path +
                    ": not a record format ecgq reads (WFDB .hea, .mat, .csv, .npy, EDF, HL7 aECG, "
                    "GE MUSE XML, Philips XML, DICOM ECG, SCP-ECG)",
                "path");
}

Expected<schema::Job> job_from_record(const EcgRecord& record) {
  const int64_t n_leads = record.n_leads();
  if (n_leads == 0 || record.n_samples == 0)
    return Status(ErrorCode::BadRecord, record.path + ": the record holds no samples", "ecg");
  schema::Job job;
  job.fs = record.fs;
  job.leads = record.leads;
  job.ecg.dtype = record.dtype;
  job.ecg.shape = {n_leads, record.n_samples};
  const size_t total = static_cast<size_t>(n_leads * record.n_samples);
  if (record.dtype == "i16") {
    job.ecg.data.assign(reinterpret_cast<const char*>(record.i16.data()), total * 2);
  } else if (record.dtype == "f32") {
    job.ecg.data.assign(reinterpret_cast<const char*>(record.f32.data()), total * 4);
  } else if (record.dtype == "f64") {
    job.ecg.data.assign(reinterpret_cast<const char*>(record.f64.data()), total * 8);
  } else {
    return Status(ErrorCode::BadRecord,
                  record.path + ": unknown sample type '" + record.dtype + "'", "ecg");
  }
  // Fold each lead's units into its gain so that the whole job is in mV; non-voltage channels
  // (NU) keep their gain, which is harmless because the model ignores them.
  std::vector<double> gains, baselines;
  bool any_scaled = false;
  for (int64_t l = 0; l < n_leads; ++l) {
    const std::string units = l < static_cast<int64_t>(record.units.size()) ? record.units[l] : "";
    double f = millivolts_per_unit(units);
    if (!std::isfinite(f)) f = 1.0;
    any_scaled = any_scaled || f != 1.0;
    const double g = record.gains.empty() ? 1.0 : record.gains[l];
    gains.push_back(g / f);
    baselines.push_back(record.baselines.empty() ? 0.0 : record.baselines[l]);
  }
  auto collapse = [](std::vector<double> v, double neutral) {
    for (double x : v)
      if (x != v[0]) return v;
    if (v[0] == neutral) return std::vector<double>{};
    return std::vector<double>{v[0]};
  };
  if (!record.gains.empty() || any_scaled) job.gain = collapse(gains, 1.0);
  if (!record.baselines.empty()) job.baseline = collapse(baselines, 0.0);
  job.units = "mV";
  return job;
}

}  // namespace ecgq
