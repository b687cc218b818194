#include "records/record_export.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>

#include "records/clinical_io.hpp"
#include "records/lead_names.hpp"
#include "records/npy.hpp"
#include "records/preprocess.hpp"
#include "records/units.hpp"

namespace ecgq {

namespace {

Status write_failed(const std::string& path) {
  return Status(ErrorCode::Internal, "cannot write " + path, "out");
}

// Row order: the 12 model leads first, then the rest as stored.
std::vector<size_t> row_order(const std::vector<std::string>& names) {
  std::vector<size_t> order(names.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  auto rank = [&](size_t i) {
    const int m = model_lead_index(names[i]);
    return m >= 0 ? m : 100;
  };
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return rank(a) < rank(b); });
  return order;
}

// Adds III, aVR, aVL, aVF computed from I and II where missing (before V1 in row order).
void derive_limb_leads(MillivoltRecord* m, std::vector<std::vector<float>>* rows) {
  auto find = [&](const char* name) {
    for (size_t i = 0; i < m->leads.size(); ++i)
      if (m->leads[i] == name) return static_cast<int>(i);
    return -1;
  };
  const int i = find("I"), ii = find("II");
  if (i < 0 || ii < 0) return;
  const auto a = (*rows)[static_cast<size_t>(i)], b = (*rows)[static_cast<size_t>(ii)];
  static const char* const kDerived[] = {"III", "aVR", "aVL", "aVF"};
  for (int k = 0; k < 4; ++k) {
    if (find(kDerived[k]) >= 0) continue;
    std::vector<float> v(a.size());
    for (size_t t = 0; t < v.size(); ++t) {
      const double x = a[t], y = b[t];
      const double d[4] = {y - x, -(x + y) / 2, x - y / 2, y - x / 2};
      v[t] = static_cast<float>(d[k]);
    }
    m->leads.push_back(kDerived[k]);
    m->derived_leads.push_back(kDerived[k]);
    rows->push_back(std::move(v));
  }
}

}  // namespace

Expected<MillivoltRecord> to_millivolts(const EcgRecord& r) {
  MillivoltRecord m;
  m.fs = r.fs;
  m.n_samples = r.n_samples;
  std::vector<std::vector<float>> rows;
  for (int64_t l = 0; l < r.n_leads(); ++l) {
    const size_t k = static_cast<size_t>(l);
    const std::string units = k < r.units.size() ? r.units[k] : "mV";
    const double mv = millivolts_per_unit(units);
    const std::string name = clinical::canonical_lead_name(r.leads[k]);
    if (!std::isfinite(mv)) {
      m.left_out.push_back(name + " (" + units + ")");
      continue;
    }
    const double g = r.gains.empty() ? 1.0 : r.gains[k];
    const double b = r.baselines.empty() ? 0.0 : r.baselines[k];
    std::vector<float> v(static_cast<size_t>(r.n_samples));
    for (int64_t t = 0; t < r.n_samples; ++t)
      v[static_cast<size_t>(t)] = static_cast<float>((r.raw(l, t) - b) / g * mv);
    m.leads.push_back(name);
    rows.push_back(std::move(v));
  }
  if (rows.empty())
    return Status(ErrorCode::BadRecord, r.path + ": no channel is a voltage", "path");
  derive_limb_leads(&m, &rows);
  const auto order = row_order(m.leads);
  std::vector<std::string> names;
  m.data.reserve(rows.size() * static_cast<size_t>(m.n_samples));
  for (size_t i : order) {
    names.push_back(m.leads[i]);
    m.data.insert(m.data.end(), rows[i].begin(), rows[i].end());
  }
  m.leads = std::move(names);
  return m;
}

Status write_npy_record(const MillivoltRecord& m, const std::string& dir, const std::string& stem) {
  return write_npy_f32(dir + "/" + stem + ".npy", m.data.data(),
                       {static_cast<int64_t>(m.leads.size()), m.n_samples});
}

Status write_wfdb_record(const MillivoltRecord& m, const std::string& dir,
                         const std::string& stem) {
  const size_t n = static_cast<size_t>(m.n_samples), leads = m.leads.size();
  std::vector<double> gains(leads);
  for (size_t l = 0; l < leads; ++l) {
    float peak = 0;
    for (size_t t = 0; t < n; ++t) peak = std::max(peak, std::fabs(m.data[l * n + t]));
    gains[l] = peak * 1000 > 32767 ? std::floor(32767 / peak) : 1000;  // ADC units per mV
    if (gains[l] < 1) gains[l] = 1;
  }
  std::string dat(n * leads * 2, '\0');
  std::vector<int16_t> first(leads);
  std::vector<int32_t> checksum(leads, 0);
  for (size_t t = 0; t < n; ++t)
    for (size_t l = 0; l < leads; ++l) {
      const double v = std::round(m.data[l * n + t] * gains[l]);
      const int16_t s = static_cast<int16_t>(std::clamp(v, -32767.0, 32767.0));
      if (t == 0) first[l] = s;
      checksum[l] += s;
      dat[(t * leads + l) * 2] = static_cast<char>(s & 0xFF);
      dat[(t * leads + l) * 2 + 1] = static_cast<char>((s >> 8) & 0xFF);
    }
  const std::string dat_path = dir + "/" + stem + ".dat", hea_path = dir + "/" + stem + ".hea";
  if (!(std::ofstream(dat_path, std::ios::binary) << dat)) return write_failed(dat_path);
  char fs[32];
  std::snprintf(fs, sizeof fs, "%.10g", m.fs);
  std::string hea = stem + " " + std::to_string(leads) + " " + fs + " " + std::to_string(n) + "\n";
  for (size_t l = 0; l < leads; ++l) {
    char g[32];
    std::snprintf(g, sizeof g, "%.10g", gains[l]);
    hea += stem + ".dat 16 " + g + "(0)/mV 16 0 " + std::to_string(first[l]) + " " +
           std::to_string(static_cast<int16_t>(checksum[l] & 0xFFFF)) + " 0 " + m.leads[l] + "\n";
  }
  if (!(std::ofstream(hea_path, std::ios::binary) << hea)) return write_failed(hea_path);
  return Status::Ok();
}

Status write_csv_record(const MillivoltRecord& m, const std::string& dir, const std::string& stem) {
  const std::string path = dir + "/" + stem + ".csv";
  std::ofstream out(path, std::ios::binary);
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.10g", m.fs);
  out << "# fs: " << buf << "\n";
  for (size_t l = 0; l < m.leads.size(); ++l) out << (l ? "," : "") << m.leads[l];
  out << "\n";
  const size_t n = static_cast<size_t>(m.n_samples);
  for (size_t t = 0; t < n; ++t) {
    for (size_t l = 0; l < m.leads.size(); ++l) {
      std::snprintf(buf, sizeof buf, "%.9g", static_cast<double>(m.data[l * n + t]));
      out << (l ? "," : "") << buf;
    }
    out << "\n";
  }
  if (!out) return write_failed(path);
  return Status::Ok();
}

}  // namespace ecgq
