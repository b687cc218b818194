#include "planner/arrivals.hpp"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <random>
#include <sstream>

namespace ecgq::planner {

namespace {

constexpr double kPi = 3.14159265358979323846;

Status bad_arrivals(const std::string& what) {
  return Status(ErrorCode::BadUsage, "--arrivals: " + what, "arrivals");
}

// Jobs per second at `t_s` for a day curve between `peak` and `trough` (peak at 14:00).
double diurnal_rate(double t_s, double peak, double trough) {
  const double hour = std::fmod(t_s / 3600.0, 24.0);
  return trough + (peak - trough) * (1 + std::cos(2 * kPi * (hour - 14) / 24)) / 2;
}

// A Poisson process whose rate is rate(t) <= max_rate, by thinning.
template <typename Rate>
std::vector<Arrival> poisson(Rate rate, double max_rate, double duration_s, int segments,
                             uint64_t seed) {
  std::vector<Arrival> out;
  if (max_rate <= 0) return out;
  std::mt19937_64 rng(seed);
  std::exponential_distribution<double> gap(max_rate);
  std::uniform_real_distribution<double> keep(0, 1);
  for (double t = gap(rng); t < duration_s; t += gap(rng))
    if (keep(rng) * max_rate <= rate(t)) out.push_back({t, segments});
  return out;
}

Expected<std::vector<Arrival>> read_trace(const std::string& path, double duration_s,
                                          int segments) {
  std::ifstream in(path);
  if (!in) return bad_arrivals("cannot read trace file " + path);
  std::vector<Arrival> out;
  std::string line;
  for (int n = 1; std::getline(in, line); ++n) {
    if (line.empty() || line[0] == '#') continue;
    std::replace(line.begin(), line.end(), ',', ' ');
    std::istringstream fields(line);
    Arrival a{0, segments};
    if (!(fields >> a.t_s)) {
      if (n == 1) continue;  // a header line
      return bad_arrivals(path + " line " + std::to_string(n) + ": expected t_seconds[,segments]");
    }
    if (!(fields >> a.segments)) a.segments = segments;
    if (a.t_s < 0 || a.segments < 1 || a.segments > 4096)
      return bad_arrivals(path + " line " + std::to_string(n) +
                          ": t_seconds must be >= 0 and segments 1 to 4096");
    if (duration_s <= 0 || a.t_s < duration_s) out.push_back(a);
  }
  std::stable_sort(out.begin(), out.end(),
                   [](const Arrival& x, const Arrival& y) { return x.t_s < y.t_s; });
  return out;
}

}  // namespace

Expected<double> parse_rate(const std::string& text) {
  const size_t slash = text.find('/');
  const std::string number = text.substr(0, slash);
  const std::string unit = slash == std::string::npos ? "s" : text.substr(slash + 1);
  double value = 0;
  try {
    size_t used = 0;
    value = std::stod(number, &used);
    if (used != number.size()) throw std::invalid_argument(number);
  } catch (const std::exception&) {
    return bad_arrivals("rate " + text + " is not a number (e.g. 2/min, 0.5/s, 30/h)");
  }
  const double per = unit == "s"     ? 1
                     : unit == "min" ? 60
                     : unit == "h"   ? 3600
                     : unit == "day" ? 86400
                                     : 0;
  if (per == 0) return bad_arrivals("rate unit " + unit + " is not s, min, h or day");
  if (value < 0) return bad_arrivals("rate " + text + " is negative");
  return value / per;
}

Expected<std::vector<Arrival>> make_arrivals(const std::string& spec, double duration_s,
                                             int segments, uint64_t seed) {
  if (spec.rfind("poisson:", 0) == 0) {
    ASSIGN_OR_RETURN(const double rate, parse_rate(spec.substr(8)));
    return poisson([rate](double) { return rate; }, rate, duration_s, segments, seed);
  }
  if (spec.rfind("diurnal:", 0) == 0) {
    const std::string rates = spec.substr(8);
    const size_t comma = rates.find(',');
    if (comma == std::string::npos)
      return bad_arrivals("diurnal needs PEAK,TROUGH (e.g. 20/min,1/h)");
    ASSIGN_OR_RETURN(const double peak, parse_rate(rates.substr(0, comma)));
    ASSIGN_OR_RETURN(const double trough, parse_rate(rates.substr(comma + 1)));
    if (trough > peak) return bad_arrivals("the diurnal trough is above its peak");
    return poisson([&](double t) { return diurnal_rate(t, peak, trough); }, peak, duration_s,
                   segments, seed);
  }
  return read_trace(spec, duration_s, segments);
}

}  // namespace ecgq::planner
