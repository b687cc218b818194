#include "records/lead_names.hpp"

#include <cctype>
#include <map>

namespace ecgq {

std::string lower_trimmed(const std::string& name) {
  size_t b = 0, e = name.size();
  while (b < e && std::isspace(static_cast<unsigned char>(name[b]))) ++b;
  while (e > b && std::isspace(static_cast<unsigned char>(name[e - 1]))) --e;
  std::string out = name.substr(b, e - b);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

namespace {

// Lower-case spelling -> index in the model lead order.
const std::map<std::string, int>& alias_table() {
  static const std::map<std::string, int> table = {
      {"i", 0},
      {"ii", 1},
      {"iii", 2},
      {"avr", 3},
      {"avl", 4},
      {"avf", 5},
      {"v1", 6},
      {"v2", 7},
      {"v3", 8},
      {"v4", 9},
      {"v5", 10},
      {"v6", 11},
      // European limb lead names (Einthoven "D" for derivation).
      {"d1", 0},
      {"d2", 1},
      {"d3", 2},
      {"di", 0},
      {"dii", 1},
      {"diii", 2},
      // European chest lead names.
      {"c1", 6},
      {"c2", 7},
      {"c3", 8},
      {"c4", 9},
      {"c5", 10},
      {"c6", 11},
  };
  return table;
}

// Removes a leading "lead" word ("Lead II", "lead_ii", "LEAD-V1").
std::string strip_lead_prefix(const std::string& lower) {
  if (lower.rfind("lead", 0) != 0 || lower.size() <= 4) return lower;
  size_t i = 4;
  while (i < lower.size() && (lower[i] == ' ' || lower[i] == '_' || lower[i] == '-')) ++i;
  return lower.substr(i);
}

}  // namespace

int model_lead_index(const std::string& name) {
  const std::string lower = strip_lead_prefix(lower_trimmed(name));
  auto it = alias_table().find(lower);
  return it == alias_table().end() ? -1 : it->second;
}

std::string unused_channel_reason(const std::string& name) {
  const std::string lower = lower_trimmed(name);
  if (lower.empty()) return "unnamed channel";
  if (lower == "vx" || lower == "vy" || lower == "vz" || lower == "x" || lower == "y" ||
      lower == "z")
    return "Frank (vectorcardiographic) lead, not one of the 12 standard leads";
  if (lower.rfind("ml", 0) == 0)
    return "modified (monitoring) limb lead, not one of the 12 standard leads";
  if (lower == "v" || lower == "ecg" || lower == "ekg")
    return "unspecified ECG lead, not one of the 12 standard leads";
  if (lower == "v7" || lower == "v8" || lower == "v9" || lower == "v3r" || lower == "v4r" ||
      lower == "v5r")
    return "extra chest lead the model does not use";
  static const char* const kNonEcg[] = {"pleth", "resp", "abp", "art", "pap", "cvp", "spo2",
                                        "co2",   "eeg",  "emg", "eog", "bp",  "temp"};
  for (const char* n : kNonEcg)
    if (lower.rfind(n, 0) == 0) return "not an ECG signal";
  return "not one of the 12 standard leads";
}

}  // namespace ecgq
