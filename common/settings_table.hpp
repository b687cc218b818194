// A program's settings table: each setting's key, default, type and help written once, bound to
// the field of the program's typed configuration that the loader fills. The table declares the
// settings (so --help, ECGQ_* variables, flags and YAML files know them), reads every value with
// the reader of its type, and gives tests the list config/*.yaml is checked against.
#pragma once

#include <functional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "common/duration.hpp"
#include "common/settings.hpp"
#include "common/status.hpp"

namespace ecgq {

template <class Config>
class SettingsTable {
 public:
  // One setting and how its typed value is stored into a Config.
  struct Row {
    SettingSpec spec;
    std::function<Status(const Settings&, Config&)> read;
  };

  // Adds a setting. `field` says where its value goes: a member pointer (&Config::bind) or a
  // callable that returns a reference into the Config ([](Config& c) -> auto& { return c.a.b; }).
  // The field's type must hold the setting's type (integers may be narrowed to an int field).
  template <class Field>
  SettingsTable& text(const char* key, const char* default_text, const char* help, Field field) {
    return add<SettingType::Text>(key, default_text, help, std::move(field));
  }
  template <class Field>
  SettingsTable& list(const char* key, const char* default_text, const char* help, Field field) {
    return add<SettingType::List>(key, default_text, help, std::move(field));
  }
  template <class Field>
  SettingsTable& duration(const char* key, const char* default_text, const char* help,
                          Field field) {
    return add<SettingType::Duration>(key, default_text, help, std::move(field));
  }
  template <class Field>
  SettingsTable& integer(const char* key, const char* default_text, const char* help, Field field) {
    return add<SettingType::Integer>(key, default_text, help, std::move(field));
  }
  template <class Field>
  SettingsTable& number(const char* key, const char* default_text, const char* help, Field field) {
    return add<SettingType::Number>(key, default_text, help, std::move(field));
  }
  template <class Field>
  SettingsTable& bytes(const char* key, const char* default_text, const char* help, Field field) {
    return add<SettingType::Bytes>(key, default_text, help, std::move(field));
  }
  template <class Field>
  SettingsTable& boolean(const char* key, const char* default_text, const char* help, Field field) {
    return add<SettingType::Boolean>(key, default_text, help, std::move(field));
  }

  // Declares every setting of the table, in table order.
  void declare(Settings& settings) const {
    for (const Row& row : rows_) settings.declare(row.spec);
  }
  // Reads every setting into `config` with the reader of its type; the first malformed value is
  // a bad_config Status naming the key and where the value came from.
  Status read(const Settings& settings, Config& config) const {
    for (const Row& row : rows_) RETURN_IF_ERROR(row.read(settings, config));
    return Status::Ok();
  }
  // `config` with every field at its table default.
  void read_defaults(Config& config) const {
    Settings defaults;
    declare(defaults);
    (void)read(defaults, config);  // tests/test_settings_tables.cpp checks every default parses
  }
  // The rows, in table order.
  const std::vector<Row>& rows() const { return rows_; }
  // The settings alone.
  std::vector<SettingSpec> specs() const {
    std::vector<SettingSpec> out;
    for (const Row& row : rows_) out.push_back(row.spec);
    return out;
  }

 private:
  template <SettingType kType, class Field>
  SettingsTable& add(const char* key, const char* default_text, const char* help, Field field) {
    std::string name = key;
    rows_.push_back(Row{SettingSpec{key, default_text, kType, help},
                        [name, field](const Settings& s, Config& c) -> Status {
                          return store<kType>(s, name, std::invoke(field, c));
                        }});
    return *this;
  }

  // Reads `key` with the reader of kType into `out`, whose type must hold a kType value.
  template <SettingType kType, class T>
  static Status store(const Settings& s, const std::string& key, T& out) {
    if constexpr (kType == SettingType::Text) {
      static_assert(std::is_same_v<T, std::string>, "a text setting needs a std::string field");
      out = s.text(key);
    } else if constexpr (kType == SettingType::List) {
      static_assert(std::is_same_v<T, std::vector<std::string>>, "a list needs a vector field");
      out = s.list(key);
    } else if constexpr (kType == SettingType::Duration) {
      static_assert(std::is_same_v<T, Millis>, "a duration setting needs a Millis field");
      ASSIGN_OR_RETURN(out, s.duration(key));
    } else if constexpr (kType == SettingType::Boolean) {
      static_assert(std::is_same_v<T, bool>, "a boolean setting needs a bool field");
      ASSIGN_OR_RETURN(out, s.boolean(key));
    } else if constexpr (kType == SettingType::Number) {
      static_assert(std::is_floating_point_v<T>, "a number setting needs a floating-point field");
      ASSIGN_OR_RETURN(out, s.number(key));
    } else {
      static_assert(std::is_integral_v<T> && !std::is_same_v<T, bool>,
                    "an integer or byte-size setting needs an integer field");
      ASSIGN_OR_RETURN(const int64_t v,
                       kType == SettingType::Bytes ? s.bytes(key) : s.integer(key));
      out = static_cast<T>(v);
    }
    return Status::Ok();
  }

  std::vector<Row> rows_;
};

}  // namespace ecgq
