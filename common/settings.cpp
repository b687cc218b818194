#include "common/settings.hpp"

#include <yaml-cpp/yaml.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdlib>

namespace ecgq {

const char* setting_type_name(SettingType type) {
  switch (type) {
    case SettingType::Text:
      return "TEXT";
    case SettingType::List:
      return "LIST";
    case SettingType::Duration:
      return "DURATION";
    case SettingType::Integer:
      return "INT";
    case SettingType::Number:
      return "NUMBER";
    case SettingType::Bytes:
      return "BYTES";
    case SettingType::Boolean:
      return "BOOL";
  }
  return "TEXT";
}

void Settings::declare(const SettingSpec& spec) {
  if (!entries_.count(spec.key)) order_.push_back(spec.key);
  entries_[spec.key] = Entry{spec.default_text, spec.type, spec.help, "default", {}};
}

Status Settings::merge_yaml_file(const std::string& path) {
  YAML::Node root;
  try {
    root = YAML::LoadFile(path);
  } catch (const std::exception& e) {
    return Status(ErrorCode::BadConfig, "cannot read config file " + path + ": " + e.what(),
                  "config");
  }
  if (root.IsNull()) return Status::Ok();
  if (!root.IsMap())
    return Status(ErrorCode::BadConfig, path + ": expected a mapping of settings", "config");
  for (const auto& item : root) {
    const std::string key = item.first.as<std::string>();
    if (!entries_.count(key))
      return Status(ErrorCode::BadConfig, path + ": unknown setting '" + key + "'", key);
    const YAML::Node& v = item.second;
    std::string text;
    if (v.IsSequence()) {
      for (size_t i = 0; i < v.size(); ++i) text += (i ? "," : "") + v[i].as<std::string>();
    } else if (v.IsScalar()) {
      text = v.as<std::string>();
    } else if (v.IsNull()) {
      text = "";
    } else {
      return Status(ErrorCode::BadConfig,
                    path + ": setting '" + key + "' must be a scalar or a list", key);
    }
    entries_[key].value = text;
    entries_[key].origin = path;
  }
  return Status::Ok();
}

void Settings::merge_environment() {
  for (const auto& key : order_) {
    std::string var = "ECGQ_";
    for (char c : key) var += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    if (const char* v = std::getenv(var.c_str())) {
      entries_[key].value = v;
      entries_[key].origin = var;
    }
  }
}

Status Settings::set(const std::string& key, const std::string& value, const std::string& origin) {
  auto it = entries_.find(key);
  if (it == entries_.end())
    return Status(ErrorCode::BadConfig, "unknown setting '" + key + "'", key);
  it->second.value = value;
  it->second.origin = origin;
  return Status::Ok();
}

static std::string flag_name(const std::string& key) {
  std::string f = "--";
  for (char c : key) f += c == '_' ? '-' : c;
  return f;
}

void Settings::add_flags(CLI::App& app, const std::vector<std::string>& skip) {
  for (const auto& key : order_) {
    if (std::find(skip.begin(), skip.end(), key) != skip.end()) continue;
    Entry& e = entries_[key];
    app.add_option(flag_name(key), e.flag_value, e.help + " (default: " + e.value + ")")
        ->type_name(setting_type_name(e.type));
  }
}

Status Settings::apply_flags() {
  for (auto& [key, e] : entries_) {
    if (e.flag_value.empty()) continue;
    e.value = e.flag_value;
    e.origin = "flag " + flag_name(key);
  }
  return Status::Ok();
}

const std::string& Settings::text(const std::string& key) const {
  return entries_.at(key).value;
}
const std::string& Settings::origin(const std::string& key) const {
  return entries_.at(key).origin;
}

Status Settings::invalid(const std::string& key, const std::string& expected, bool quoted) const {
  const Entry& e = entries_.at(key);
  const std::string value = quoted ? "'" + e.value + "'" : e.value;
  return Status(ErrorCode::BadConfig,
                "setting " + key + " = " + value + " (from " + e.origin + "): expected " + expected,
                key);
}

Status Settings::check_minimums(std::initializer_list<Minimum> bounds,
                                const std::string& expected_prefix, bool quoted) const {
  for (const Minimum& m : bounds)
    if (m.value < m.min) return invalid(m.key, expected_prefix + std::to_string(m.min), quoted);
  return Status::Ok();
}

Expected<Millis> Settings::duration(const std::string& key) const {
  auto d = parse_duration(text(key));
  if (!d) return invalid(key, "a duration such as 300ms, 2.5s, 15m or 1h");
  return d;
}

Expected<int64_t> Settings::integer(const std::string& key) const {
  const std::string& t = text(key);
  char* end = nullptr;
  errno = 0;
  long long v = std::strtoll(t.c_str(), &end, 10);
  if (t.empty() || *end != '\0' || errno != 0) return invalid(key, "an integer");
  return static_cast<int64_t>(v);
}

Expected<double> Settings::number(const std::string& key) const {
  const std::string& t = text(key);
  char* end = nullptr;
  double v = std::strtod(t.c_str(), &end);
  if (t.empty() || *end != '\0' || !std::isfinite(v)) return invalid(key, "a number");
  return v;
}

Expected<bool> Settings::boolean(const std::string& key) const {
  std::string t = text(key);
  std::transform(t.begin(), t.end(), t.begin(), [](unsigned char c) { return std::tolower(c); });
  if (t == "true" || t == "1" || t == "yes" || t == "on") return true;
  if (t == "false" || t == "0" || t == "no" || t == "off") return false;
  return invalid(key, "true or false");
}

Expected<int64_t> Settings::bytes(const std::string& key) const {
  const std::string& t = text(key);
  char* end = nullptr;
  double v = std::strtod(t.c_str(), &end);
  if (t.empty() || end == t.c_str() || v < 0)
    return invalid(key, "a size such as 134217728 or 128MiB");
  std::string unit(end);
  double scale = 0;
  if (unit.empty() || unit == "B")
    scale = 1;
  else if (unit == "KiB")
    scale = 1024.0;
  else if (unit == "MiB")
    scale = 1024.0 * 1024;
  else if (unit == "GiB")
    scale = 1024.0 * 1024 * 1024;
  else if (unit == "KB" || unit == "kB")
    scale = 1e3;
  else if (unit == "MB")
    scale = 1e6;
  else if (unit == "GB")
    scale = 1e9;
  else
    return invalid(key, "a size such as 134217728 or 128MiB");
  return static_cast<int64_t>(std::llround(v * scale));
}

std::vector<std::string> Settings::list(const std::string& key) const {
  std::vector<std::string> out;
  std::string cur;
  for (char c : text(key) + ",") {
    if (c == ',') {
      auto b = cur.find_first_not_of(' ');
      auto e = cur.find_last_not_of(' ');
      if (b != std::string::npos) out.push_back(cur.substr(b, e - b + 1));
      cur.clear();
    } else {
      cur += c;
    }
  }
  return out;
}

bool env_flag(const char* name) {
  const char* raw = std::getenv(name);
  std::string v = raw ? raw : "";
  for (auto& c : v) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return v == "1" || v == "true" || v == "yes" || v == "on";
}

}  // namespace ecgq
