// MapWriter: writes one msgpack map whose header counts the fields actually written. Fields go
// into a buffer as they are added and finish() puts the header in front, so no encoder counts
// a map's size by hand (a miscount silently shifts every later key into a value).
#pragma once

#include <cstdint>
#include <msgpack.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace ecgq::schema {

// Builds one msgpack map, field by field.
class MapWriter {
 public:
  // Adds `key: value`, packed as msgpack-c packs T (note: integral doubles become integers).
  template <typename T>
  MapWriter& add(std::string_view key, const T& value) {
    key_(key);
    pk_.pack(value);
    return *this;
  }
  // Adds `key: value` only when the value is set.
  template <typename T>
  MapWriter& add_if(std::string_view key, const std::optional<T>& value) {
    if (value) add(key, *value);
    return *this;
  }
  // Adds a float64 that stays a float on the wire, integral or not.
  MapWriter& add_f64(std::string_view key, double value);
  // Adds an already encoded msgpack value (one complete object, e.g. another map's finish()).
  MapWriter& add_encoded(std::string_view key, const std::string& msgpack_value);
  // Adds an array of already encoded msgpack values.
  MapWriter& add_encoded_array(std::string_view key, const std::vector<std::string>& values);
  // Fields added so far.
  uint32_t size() const { return count_; }
  // The encoded map: its header (with the count) and then the fields.
  std::string finish() const;

 private:
  void key_(std::string_view key);

  msgpack::sbuffer fields_;
  msgpack::packer<msgpack::sbuffer> pk_{fields_};
  uint32_t count_ = 0;
};

}  // namespace ecgq::schema
