#include "planner/profile.hpp"

#include <fstream>
#include <nlohmann/json.hpp>

namespace ecgq::planner {

namespace {

// Linear in the segments: a fixed part and a part per segment.
ServiceProfile linear(std::string name, double load_ms, double fixed_ms, double per_segment_ms) {
  ServiceProfile p;
  p.name = std::move(name);
  p.load_ms = load_ms;
  p.preprocess_ms = 0.4;
  p.transport_ms = 5.5;  // client round trip - total_ms, docs/performance.md
  p.forward_ms.assign(9, 0.0);
  for (int n = 1; n <= 8; ++n) p.forward_ms[n] = fixed_ms + per_segment_ms * n;
  return p;
}

}  // namespace

double ServiceProfile::forward(int segments) const {
  const int top = max_measured();
  if (top < 1 || segments < 1) return 0;
  if (segments <= top && forward_ms[segments] > 0) return forward_ms[segments];
  // The nearest measured sizes below and above (or the last two when beyond them).
  int lo = std::min(segments, top), hi = lo;
  while (lo > 1 && (lo >= segments || forward_ms[lo] <= 0)) --lo;
  while (hi < top && (hi <= segments || forward_ms[hi] <= 0)) ++hi;
  if (hi <= lo || forward_ms[hi] <= 0 || forward_ms[lo] <= 0) {
    // One measured size only: proportional to the segments.
    const int known = forward_ms[lo] > 0 ? lo : hi;
    return forward_ms[known] * segments / known;
  }
  const double slope = (forward_ms[hi] - forward_ms[lo]) / (hi - lo);
  return forward_ms[lo] + slope * (segments - lo);
}

Expected<ServiceProfile> default_profile(const std::string& precision) {
  // docs/performance.md, full-size ECG-FM, 2 threads: a 10 s ECG (2 segments) runs in 363 ms
  // (fp32) and 197 ms (bf16); a wake from the page cache loads in 94 ms and 168 ms.
  if (precision == "fp32") return linear("default fp32 (docs/performance.md)", 94, 0, 181.5);
  if (precision == "bf16") return linear("default bf16 (docs/performance.md)", 168, 0, 98.5);
  return Status(ErrorCode::BadUsage, "precision is " + precision + "; expected fp32 or bf16",
                "precision");
}

Expected<ServiceProfile> read_profile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return Status(ErrorCode::NotFound, "cannot read profile " + path, "profile");
  const auto j = nlohmann::json::parse(in, nullptr, false);
  const auto bad = [&](const std::string& what) {
    return Status(ErrorCode::BadUsage, "profile " + path + ": " + what, "profile");
  };
  if (!j.is_object()) return bad("not a JSON object");
  ServiceProfile p;
  p.name = j.value("name", path);
  if (!j.contains("load_ms") || !j["load_ms"].is_number() || j["load_ms"].get<double>() < 0)
    return bad("load_ms must be a number >= 0");
  p.load_ms = j["load_ms"].get<double>();
  p.preprocess_ms = j.value("preprocess_ms", 0.0);
  p.transport_ms = j.value("transport_ms", 0.0);
  const auto& f = j.contains("forward_ms") ? j["forward_ms"] : nlohmann::json();
  if (!f.is_object() || f.empty())
    return bad("forward_ms must map segments to milliseconds, e.g. {\"1\": 180, \"2\": 360}");
  for (const auto& [key, value] : f.items()) {
    int n = 0;
    try {
      n = std::stoi(key);
    } catch (const std::exception&) {
      return bad("forward_ms key " + key + " is not a number of segments");
    }
    if (n < 1 || n > 4096 || !value.is_number() || value.get<double>() <= 0)
      return bad("forward_ms[" + key + "] must be a positive time for 1 to 4096 segments");
    if (static_cast<int>(p.forward_ms.size()) <= n) p.forward_ms.resize(n + 1, 0.0);
    p.forward_ms[n] = value.get<double>();
  }
  return p;
}

Status write_profile(const ServiceProfile& profile, const std::string& path) {
  nlohmann::json forward = nlohmann::json::object();
  for (int n = 1; n <= profile.max_measured(); ++n)
    if (profile.forward_ms[n] > 0) forward[std::to_string(n)] = profile.forward_ms[n];
  const nlohmann::json j = {{"name", profile.name},
                            {"load_ms", profile.load_ms},
                            {"preprocess_ms", profile.preprocess_ms},
                            {"transport_ms", profile.transport_ms},
                            {"forward_ms", forward}};
  std::ofstream out(path);
  out << j.dump(2) << "\n";
  if (!out) return Status(ErrorCode::Internal, "cannot write profile " + path, "out");
  return Status::Ok();
}

}  // namespace ecgq::planner
