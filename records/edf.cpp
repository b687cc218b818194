// EDF and EDF+ (https://www.edfplus.info/specs/): a 256-byte header, 256 bytes per signal, then
// data records of int16 samples, signal after signal.
#include <cmath>
#include <cstdlib>

#include "records/clinical_io.hpp"
#include "records/clinical_readers.hpp"

namespace ecgq {

namespace {

// One signal's header fields.
struct EdfSignal {
  std::string label, units;
  double phys_min = 0, phys_max = 0, dig_min = 0, dig_max = 0;
  int64_t per_record = 0;
};

std::string field(const std::string& b, size_t at, size_t len) {
  std::string s = b.substr(at, len);
  const size_t e = s.find_last_not_of(' ');
  s = e == std::string::npos ? "" : s.substr(0, e + 1);
  const size_t f = s.find_first_not_of(' ');
  return f == std::string::npos ? "" : s.substr(f);
}

// "dd.mm.yy" + "hh.mm.ss" -> "yyyy-mm-ddThh:mm:ss" (EDF's clipping date: yy >= 85 is 19yy).
std::string iso_time(const std::string& date, const std::string& time) {
  if (date.size() != 8 || time.size() != 8) return "";
  const int yy = std::atoi(date.substr(6, 2).c_str());
  return std::to_string(yy >= 85 ? 1900 + yy : 2000 + yy) + "-" + date.substr(3, 2) + "-" +
         date.substr(0, 2) + "T" + time.substr(0, 2) + ":" + time.substr(3, 2) + ":" +
         time.substr(6, 2);
}

// The EDF+ patient and recording fields: "code sex birthdate name", "Startdate date code tech
// equipment" (X for unknown).
void edf_plus_fields(const std::string& patient, const std::string& recording, EcgRecord* r) {
  auto words = [](const std::string& s) {
    std::vector<std::string> w;
    size_t i = 0;
    while (i < s.size()) {
      const size_t e = s.find(' ', i);
      const std::string word = s.substr(i, e == std::string::npos ? std::string::npos : e - i);
      if (!word.empty()) w.push_back(word == "X" ? "" : word);
      if (e == std::string::npos) break;
      i = e + 1;
    }
    return w;
  };
  const auto p = words(patient);
  if (p.size() >= 4) {
    r->patient_id = p[0];
    r->birth_date = p[2];
    r->patient_name = p[3];
  }
  const auto rec = words(recording);
  if (rec.size() >= 5 && rec[0] == "Startdate") r->device = rec[4];
}

Expected<std::vector<EdfSignal>> edf_signals(const std::string& b, const std::string& path,
                                             int64_t ns) {
  std::vector<EdfSignal> signals(static_cast<size_t>(ns));
  const size_t base = 256, n = static_cast<size_t>(ns);
  for (size_t i = 0; i < n; ++i) {
    EdfSignal& s = signals[i];
    s.label = field(b, base + i * 16, 16);
    s.units = field(b, base + n * 96 + i * 8, 8);
    double v[5];
    const size_t at[5] = {n * 104, n * 112, n * 120, n * 128, n * 216};
    static const char* const kNames[5] = {"physical minimum", "physical maximum", "digital minimum",
                                          "digital maximum", "samples per record"};
    for (int k = 0; k < 5; ++k)
      if (!clinical::parse_number(field(b, base + at[k] + i * 8, 8), &v[k]))
        return clinical::bad(path, "signal " + std::to_string(i + 1) + " (" + s.label + ")",
                             std::string(kNames[k]) + " is not a number");
    s.phys_min = v[0];
    s.phys_max = v[1];
    s.dig_min = v[2];
    s.dig_max = v[3];
    if (v[4] < 1 || v[4] > 1e7 || v[4] != std::floor(v[4]))
      return clinical::bad(path, "signal " + std::to_string(i + 1) + " (" + s.label + ")",
                           "samples per record must be a positive integer");
    s.per_record = static_cast<int64_t>(v[4]);
  }
  return signals;
}

}  // namespace

Expected<EcgRecord> read_edf(const std::string& b, const std::string& path) {
  if (b.size() < 256 || b.compare(0, 8, "0       ") != 0)
    return clinical::bad(path, "byte 0", "not an EDF file (version field must be \"0\")");
  const std::string reserved = field(b, 192, 44);
  if (reserved.rfind("EDF+D", 0) == 0)
    return Status(ErrorCode::UnsupportedFormat,
                  path + ": EDF+D (discontinuous) recordings are not supported; export it as EDF+C",
                  "path");
  double header_bytes, n_records, duration, ns_d;
  if (!clinical::parse_number(field(b, 184, 8), &header_bytes) ||
      !clinical::parse_number(field(b, 252, 4), &ns_d) || ns_d < 1 || ns_d > 4096)
    return clinical::bad(path, "header", "number of signals or header size is not valid");
  const int64_t ns = static_cast<int64_t>(ns_d);
  if (header_bytes != 256.0 * (ns + 1) || b.size() < static_cast<size_t>(header_bytes))
    return clinical::bad(path, "byte 184",
                         "header size " + field(b, 184, 8) + " does not match " +
                             std::to_string(ns) + " signals (or the file is shorter)");
  if (!clinical::parse_number(field(b, 244, 8), &duration) || duration <= 0)
    return clinical::bad(path, "byte 244", "data record duration must be a positive number");
  ASSIGN_OR_RETURN(auto signals, edf_signals(b, path, ns));
  int64_t record_samples = 0, best = 0;
  for (const EdfSignal& s : signals) {
    record_samples += s.per_record;
    if (s.label != "EDF Annotations") best = std::max(best, s.per_record);
  }
  if (best == 0) return clinical::bad(path, "signals", "no ordinary signal (only annotations)");
  const size_t record_bytes = static_cast<size_t>(record_samples) * 2;
  const size_t data_bytes = b.size() - static_cast<size_t>(header_bytes);
  if (!clinical::parse_number(field(b, 236, 8), &n_records) || n_records == -1)
    n_records = static_cast<double>(data_bytes / record_bytes);
  if (n_records < 1 || n_records * static_cast<double>(record_bytes) > data_bytes)
    return clinical::bad(path, "byte 236",
                         "number of data records " + field(b, 236, 8) + " of " +
                             std::to_string(record_bytes) + " bytes does not fit the " +
                             std::to_string(data_bytes) + " data bytes");
  const int64_t records = static_cast<int64_t>(n_records);
  EcgRecord r;
  r.path = path;
  r.name = clinical::stem_name(path);
  r.format = "edf";
  r.fs = static_cast<double>(best) / duration;
  r.n_samples = records * best;
  std::vector<std::vector<int32_t>> samples;
  int64_t offset = 0;
  for (const EdfSignal& s : signals) {
    const int64_t at = offset;
    offset += s.per_record;
    if (s.label == "EDF Annotations") continue;
    if (s.per_record != best) {
      r.warnings.push_back(s.label + ": left out (" + std::to_string(s.per_record) +
                           " samples per record, the record's rate needs " + std::to_string(best) +
                           ")");
      continue;
    }
    if (s.dig_max <= s.dig_min || s.phys_max == s.phys_min)
      return clinical::bad(path, "signal " + s.label, "empty digital or physical range");
    std::vector<int32_t> v(static_cast<size_t>(r.n_samples));
    for (int64_t k = 0; k < records; ++k) {
      const char* p = b.data() + static_cast<size_t>(header_bytes) +
                      static_cast<size_t>(k) * record_bytes + static_cast<size_t>(at) * 2;
      for (int64_t t = 0; t < best; ++t)
        v[static_cast<size_t>(k * best + t)] = static_cast<int16_t>(
            static_cast<uint8_t>(p[2 * t]) | (static_cast<uint8_t>(p[2 * t + 1]) << 8));
    }
    samples.push_back(std::move(v));
    const double gain = (s.dig_max - s.dig_min) / (s.phys_max - s.phys_min);
    r.leads.push_back(clinical::canonical_lead_name(s.label));
    r.gains.push_back(gain);
    r.baselines.push_back(s.dig_min - s.phys_min * gain);
    r.units.push_back(s.units.empty() ? "mV" : s.units);
  }
  clinical::store_adc(&r, samples);
  r.acquisition_time = iso_time(field(b, 168, 8), field(b, 176, 8));
  if (reserved.rfind("EDF+", 0) == 0) edf_plus_fields(field(b, 8, 80), field(b, 88, 80), &r);
  return r;
}

}  // namespace ecgq
