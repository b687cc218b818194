#include "protocol/map_writer.hpp"

#include "protocol/schema_msgpack.hpp"

namespace ecgq::schema {

void MapWriter::key_(std::string_view key) {
  pk_.pack_str(static_cast<uint32_t>(key.size()));
  pk_.pack_str_body(key.data(), static_cast<uint32_t>(key.size()));
  ++count_;
}

MapWriter& MapWriter::add_f64(std::string_view key, double value) {
  key_(key);
  detail::pack_f64(pk_, value);
  return *this;
}

MapWriter& MapWriter::add_encoded(std::string_view key, const std::string& msgpack_value) {
  key_(key);
  detail::pack_raw(pk_, msgpack_value);
  return *this;
}

MapWriter& MapWriter::add_encoded_array(std::string_view key, const std::vector<std::string>& values) {
  key_(key);
  pk_.pack_array(static_cast<uint32_t>(values.size()));
  for (const auto& v : values) detail::pack_raw(pk_, v);
  return *this;
}

std::string MapWriter::finish() const {
  msgpack::sbuffer header;
  msgpack::packer<msgpack::sbuffer>(header).pack_map(count_);
  std::string out;
  out.reserve(header.size() + fields_.size());
  out.append(header.data(), header.size());
  out.append(fields_.data(), fields_.size());
  return out;
}

}  // namespace ecgq::schema
