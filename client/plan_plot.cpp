#include "client/plan_plot.hpp"

#include <algorithm>
#include <cstdio>
#include <fstream>

namespace ecgq::client {

namespace {

constexpr double kW = 720, kH = 360, kLeft = 70, kRight = 70, kTop = 40, kBottom = 60;

std::string num(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f", v);
  return buf;
}

// A polyline of `values` scaled to the plot's height (0 at the bottom, `max` at the top).
std::string line(const std::vector<double>& values, double max, const char* cls) {
  std::string points;
  const double step = values.size() > 1 ? (kW - kLeft - kRight) / (values.size() - 1) : 0;
  for (size_t i = 0; i < values.size(); ++i) {
    const double x = kLeft + step * static_cast<double>(i);
    const double y = kH - kBottom - (max > 0 ? values[i] / max : 0) * (kH - kTop - kBottom);
    points += num(x) + "," + num(y) + " ";
  }
  return "<polyline class='" + std::string(cls) + "' points='" + points + "'/>";
}

}  // namespace

Status write_plan_plot(const std::string& path, const std::string& sweep_key,
                       const std::vector<std::pair<std::string, planner::PlanResult>>& rows) {
  std::vector<double> p99, hours;
  for (const auto& [label, r] : rows) {
    p99.push_back(r.p99_ms);
    hours.push_back(r.worker_hours_awake);
  }
  const double max_p99 = std::max(1.0, *std::max_element(p99.begin(), p99.end()) * 1.1);
  const double max_hours = std::max(0.01, *std::max_element(hours.begin(), hours.end()) * 1.1);
  std::string svg = "<svg xmlns='http://www.w3.org/2000/svg' width='" + num(kW) + "' height='" +
                    num(kH) + "' font-family='sans-serif' font-size='12'>";
  svg +=
      "<style>.p{fill:none;stroke:#c0392b;stroke-width:2}.h{fill:none;stroke:#1f6feb;"
      "stroke-width:2}.a{stroke:#333}</style>";
  svg += "<text x='" + num(kLeft) +
         "' y='20' font-weight='bold'>latency p99 (red, left) and "
         "worker-hours awake (blue, right) by " +
         sweep_key + "</text>";
  svg += "<line class='a' x1='" + num(kLeft) + "' y1='" + num(kTop) + "' x2='" + num(kLeft) +
         "' y2='" + num(kH - kBottom) + "'/><line class='a' x1='" + num(kW - kRight) + "' y1='" +
         num(kTop) + "' x2='" + num(kW - kRight) + "' y2='" + num(kH - kBottom) +
         "'/><line class='a' x1='" + num(kLeft) + "' y1='" + num(kH - kBottom) + "' x2='" +
         num(kW - kRight) + "' y2='" + num(kH - kBottom) + "'/>";
  svg += "<text x='5' y='" + num(kTop + 4) + "' fill='#c0392b'>" + num(max_p99) + " ms</text>";
  svg += "<text x='" + num(kW - kRight + 5) + "' y='" + num(kTop + 4) + "' fill='#1f6feb'>" +
         num(max_hours) + " h</text>";
  svg += line(p99, max_p99, "p") + line(hours, max_hours, "h");
  const double step = rows.size() > 1 ? (kW - kLeft - kRight) / (rows.size() - 1) : 0;
  for (size_t i = 0; i < rows.size(); ++i) {
    const double x = kLeft + step * static_cast<double>(i);
    svg += "<text class='x' x='" + num(x) + "' y='" + num(kH - kBottom + 18) +
           "' text-anchor='middle'>" + rows[i].first.substr(rows[i].first.find('=') + 1) +
           "</text>";
  }
  svg += "</svg>\n";
  std::ofstream out(path);
  out << svg;
  if (!out) return Status(ErrorCode::IoError, "cannot write " + path, "plot");
  return Status::Ok();
}

}  // namespace ecgq::client
