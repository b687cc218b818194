// Layered configuration: declared defaults < YAML file < ECGQ_* environment < command-line flags.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <map>
#include <string>
#include <vector>

#include "common/duration.hpp"
#include "common/status.hpp"

namespace CLI {
class App;
}

namespace ecgq {

// How a setting's text is read: the typed reader below that parses it, and the type --help shows.
enum class SettingType { Text, List, Duration, Integer, Number, Bytes, Boolean };

// One setting: its key, default text, type and one-line help. A program writes these once, in
// its settings table (common/settings_table.hpp); declaration, --help, the typed loader and the
// check of config/*.yaml all read them from there.
struct SettingSpec {
  std::string key;
  std::string default_text;
  SettingType type = SettingType::Text;
  std::string help;
};

// What --help shows for a value of `type` ("TEXT", "DURATION", "INT", "BYTES", ...).
const char* setting_type_name(SettingType type);

// A flat set of named settings with their text values and where each value came from.
class Settings {
 public:
  // Declares a setting, its default text and a one-line help used by --help.
  void declare(const SettingSpec& spec);
  void declare(const std::string& key, const std::string& default_text, const std::string& help) {
    declare(SettingSpec{key, default_text, SettingType::Text, help});
  }

  // Merges a YAML file whose top-level keys are settings; unknown keys are an error.
  Status merge_yaml_file(const std::string& path);
  // Merges ECGQ_<KEY> (upper case) environment variables for every declared key.
  void merge_environment();
  // Sets one value, recording `origin` (e.g. "flag --idle-timeout").
  Status set(const std::string& key, const std::string& value, const std::string& origin);

  // Adds one CLI11 option per declared key (`--idle-timeout` for `idle_timeout`), unless listed
  // in `skip`; call apply_flags() after parsing to merge the ones the user gave.
  void add_flags(CLI::App& app, const std::vector<std::string>& skip = {});
  // Merges the values of flags added by add_flags() that were given on the command line.
  Status apply_flags();

  // The text value of a declared key (throws std::out_of_range for an undeclared key: a bug).
  const std::string& text(const std::string& key) const;
  // Typed readers; a malformed value gives a bad_config Status naming the key and its origin.
  Expected<Millis> duration(const std::string& key) const;
  Expected<int64_t> integer(const std::string& key) const;
  Expected<double> number(const std::string& key) const;
  Expected<bool> boolean(const std::string& key) const;
  // Byte sizes: "134217728", "128MiB", "64KiB", "1GiB", "10MB".
  Expected<int64_t> bytes(const std::string& key) const;
  // A comma-separated list (YAML sequences are stored that way).
  std::vector<std::string> list(const std::string& key) const;
  // Where the current value of `key` came from: "default", the YAML path, the env var or the flag.
  const std::string& origin(const std::string& key) const;
  // True when `key` was declared.
  bool has(const std::string& key) const { return entries_.count(key) > 0; }
  // The bad_config error for a value of `key` that is not what it should be:
  // "setting KEY = 'VALUE' (from ORIGIN): expected EXPECTED" (the value unquoted when `quoted` is
  // false), with field KEY. The typed readers use it, and loaders for their range checks.
  Status invalid(const std::string& key, const std::string& expected, bool quoted = true) const;
  // A lower bound of an integer setting's value, for check_minimums().
  struct Minimum {
    const char* key;
    int64_t value;
    int64_t min;
  };
  // The first value below its bound as invalid(key, expected_prefix + bound), else Ok.
  Status check_minimums(std::initializer_list<Minimum> bounds, const std::string& expected_prefix,
                        bool quoted = true) const;
  // Every declared key in declaration order.
  const std::vector<std::string>& keys() const { return order_; }

 private:
  struct Entry {
    std::string value;
    SettingType type = SettingType::Text;
    std::string help;
    std::string origin;
    std::string flag_value;
  };
  std::map<std::string, Entry> entries_;
  std::vector<std::string> order_;
};

// True when environment variable `name` is 1, true, yes or on (any case): switches that are not
// settings (HF_HUB_OFFLINE, test and benchmark overrides).
bool env_flag(const char* name);

}  // namespace ecgq
