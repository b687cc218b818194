#include "client/plot_svg.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>

#include "client/csv_output.hpp"
#include "client/job_source.hpp"
#include "common/text.hpp"

namespace ecgq::client {

namespace {

constexpr double kPxPerS = 100;     // 25 mm/s at 4 px/mm
constexpr double kPxPerMv = 40;     // 10 mm/mV
constexpr double kLeadH = 120;      // px per lead strip
constexpr double kMaxSeconds = 60;  // drawn at most, as /ui does
constexpr double kLeft = 40, kTop = 40, kPanel = 420;

std::string num(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f", v);
  return buf;
}

// Text escaped for XML.
std::string xml(const std::string& raw) {
  std::string out;
  for (char c : escape_invalid_utf8(raw)) {
    if (c == '<')
      out += "&lt;";
    else if (c == '>')
      out += "&gt;";
    else if (c == '&')
      out += "&amp;";
    else if (c == '"')
      out += "&quot;";
    else
      out += c;
  }
  return out;
}

// ECG paper behind one strip: 0.04 s / 0.1 mV minor squares, 0.2 s / 0.5 mV major ones.
void grid(std::string& svg, double y0, double width) {
  for (int i = 0; i * 0.04 * kPxPerS <= width; ++i) {
    const double x = kLeft + i * 0.04 * kPxPerS;
    svg += "<line x1='" + num(x) + "' y1='" + num(y0) + "' x2='" + num(x) + "' y2='" +
           num(y0 + kLeadH) + "' class='" + (i % 5 ? "g" : "G") + "'/>";
  }
  for (int i = 0; i * 0.1 * kPxPerMv <= kLeadH; ++i) {
    const double y = y0 + i * 0.1 * kPxPerMv;
    svg += "<line x1='" + num(kLeft) + "' y1='" + num(y) + "' x2='" + num(kLeft + width) +
           "' y2='" + num(y) + "' class='" + (i % 5 ? "g" : "G") + "'/>";
  }
}

// The saliency as shading: step k of segment s covers [5 s + 5k/steps, 5 s + 5(k+1)/steps).
void saliency(std::string& svg, const schema::Result& r, double y0, double seconds) {
  if (!r.saliency || r.saliency->dtype != "f32" || r.saliency->shape.size() != 2) return;
  const auto* v = reinterpret_cast<const float*>(r.saliency->data.data());
  const int64_t segs = r.saliency->shape[0], steps = r.saliency->shape[1];
  float max = 0;
  for (int64_t i = 0; i < segs * steps; ++i) max = std::max(max, std::fabs(v[i]));
  if (max <= 0 || steps <= 0) return;
  const double step_s = 5.0 / static_cast<double>(steps);
  for (int64_t s = 0; s < segs; ++s)
    for (int64_t k = 0; k < steps; ++k) {
      const double t = 5.0 * static_cast<double>(s) + step_s * static_cast<double>(k);
      const double o = std::fabs(v[s * steps + k]) / max;
      if (o < 0.05 || t >= seconds) continue;
      svg += "<rect x='" + num(kLeft + t * kPxPerS) + "' y='" + num(y0) + "' width='" +
             num(step_s * kPxPerS + 0.5) + "' height='" + num(kLeadH) +
             "' class='s' fill-opacity='" + num(0.35 * o).substr(0, 4) + "'/>";
    }
}

void lead(std::string& svg, const RawEcg& rec, int64_t l, int64_t shown, double y0) {
  std::string d;
  const double mid = y0 + kLeadH / 2;
  for (int64_t t = 0; t < shown; ++t) {
    const double x = kLeft + static_cast<double>(t) / rec.fs * kPxPerS;
    const double y = mid - rec.samples[static_cast<size_t>(l * rec.n_samples + t)] * kPxPerMv;
    d += (t ? "L" : "M") + num(x) + " " + num(std::clamp(y, y0, y0 + kLeadH));
  }
  svg += "<path d='" + d + "' class='t'/><text x='" + num(kLeft + 4) + "' y='" + num(y0 + 14) +
         "' class='n'>" + xml(rec.leads[static_cast<size_t>(l)]) + "</text>";
}

// Label bars sorted high to low, the 0.5 threshold marked; then the timings.
void panel(std::string& svg, const schema::Result& r, double x0) {
  std::vector<std::pair<float, std::string>> probs;
  for (size_t i = 0; i < r.probs.size() && i < r.labels.size(); ++i)
    probs.emplace_back(r.probs[i], r.labels[i]);
  std::sort(probs.rbegin(), probs.rend());
  double y = kTop + 10;
  for (const auto& [p, label] : probs) {
    svg += "<text x='" + num(x0) + "' y='" + num(y + 10) + "' class='l'>" + xml(label) +
           "</text><rect x='" + num(x0 + 270) + "' y='" + num(y) + "' width='100' height='12' " +
           "class='track'/><rect x='" + num(x0 + 270) + "' y='" + num(y) + "' width='" +
           num(100 * p) + "' height='12' class='" + (p >= 0.5 ? "hi" : "lo") + "'/><text x='" +
           num(x0 + 375) + "' y='" + num(y + 10) + "' class='l'>" + num(p * 100) + "%</text>";
    y += 18;
  }
  svg += "<line x1='" + num(x0 + 320) + "' y1='" + num(kTop + 6) + "' x2='" + num(x0 + 320) +
         "' y2='" + num(y) + "' class='th'/>";
  y += 20;
  const auto& t = r.timings;
  const std::pair<const char*, double> rows[] = {{"queued", t.queued_ms},
                                                 {"wake", t.wake_ms},
                                                 {"load", t.load_ms},
                                                 {"infer", t.infer_ms},
                                                 {"total", t.total_ms}};
  for (const auto& [name, ms] : rows) {
    svg += "<text x='" + num(x0) + "' y='" + num(y) + "' class='l'>" + name + ": " + num(ms) +
           " ms</text>";
    y += 16;
  }
  svg += "<text x='" + num(x0) + "' y='" + num(y) + "' class='l'>" +
         (r.cold_start ? "cold start" : "warm") + "</text>";
}

}  // namespace

std::string plot_svg(const std::string& path, const RawEcg& rec, const schema::Result& r) {
  const int64_t shown =
      std::min<int64_t>(rec.n_samples, static_cast<int64_t>(kMaxSeconds * rec.fs));
  const double seconds = static_cast<double>(shown) / rec.fs;
  const double width = seconds * kPxPerS;
  const double height = kTop + kLeadH * static_cast<double>(rec.n_leads) + 40;
  std::string svg = "<svg xmlns='http://www.w3.org/2000/svg' width='" +
                    num(kLeft + width + 40 + kPanel) + "' height='" + num(height) + "'>";
  svg +=
      "<style>.g{stroke:#f6c9c9;stroke-width:.5}.G{stroke:#e99;stroke-width:1}"
      ".t{fill:none;stroke:#000;stroke-width:1}.s{fill:#1f6feb}.n{font:bold 12px sans-serif}"
      ".e{stroke:#1f6feb;stroke-dasharray:4 3}.l{font:12px sans-serif}.track{fill:#eee}"
      ".hi{fill:#c0392b}.lo{fill:#888}.th{stroke:#333;stroke-width:2}</style>";
  svg += "<text x='" + num(kLeft) + "' y='20' class='n'>" + xml(path) + ": " +
         std::to_string(r.n_segments) + " segment(s) of 5 s, " + xml(r.model.name) + " " +
         xml(r.model.precision) + "</text>";
  for (int64_t l = 0; l < rec.n_leads; ++l) {
    const double y0 = kTop + kLeadH * static_cast<double>(l);
    grid(svg, y0, width);
    saliency(svg, r, y0, seconds);
    for (int64_t s = 1; s <= r.n_segments && 5.0 * s <= seconds; ++s)
      svg += "<line x1='" + num(kLeft + 5.0 * s * kPxPerS) + "' y1='" + num(y0) + "' x2='" +
             num(kLeft + 5.0 * s * kPxPerS) + "' y2='" + num(y0 + kLeadH) + "' class='e'/>";
    lead(svg, rec, l, shown, y0);
  }
  panel(svg, r, kLeft + width + 40);
  return svg + "</svg>\n";
}

Status write_plot(const std::string& dir, const std::string& path, const schema::Result& r) {
  InputOptions options;
  ASSIGN_OR_RETURN(const schema::Job job, job_from_path(path, options));
  ASSIGN_OR_RETURN(const RawEcg rec, raw_from_job(job));
  std::string name = path;
  std::replace(name.begin(), name.end(), '/', '_');
  while (!name.empty() && (name[0] == '_' || name[0] == '.')) name.erase(0, 1);
  const std::string file = dir + "/" + name + ".svg";
  std::ofstream out(file);
  out << plot_svg(path, rec, r);
  if (!out) return Status(ErrorCode::IoError, "cannot write " + file, "plot");
  return Status::Ok();
}

}  // namespace ecgq::client
