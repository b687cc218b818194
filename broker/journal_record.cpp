#include "broker/journal_record.hpp"

#include <msgpack.hpp>

namespace ecgq::broker {

std::string pack_frames(const std::vector<std::string>& frames) {
  msgpack::sbuffer buf;
  msgpack::packer<msgpack::sbuffer> pk(buf);
  pk.pack_array(static_cast<uint32_t>(frames.size()));
  for (const auto& f : frames) {
    pk.pack_bin(static_cast<uint32_t>(f.size()));
    pk.pack_bin_body(f.data(), static_cast<uint32_t>(f.size()));
  }
  return std::string(buf.data(), buf.size());
}

Expected<std::vector<std::string>> unpack_frames(const std::string& blob) {
  try {
    auto handle = msgpack::unpack(blob.data(), blob.size());
    const auto& o = handle.get();
    if (o.type != msgpack::type::ARRAY) return Status("journal_corrupt", "body is not an array");
    std::vector<std::string> frames;
    for (uint32_t i = 0; i < o.via.array.size; ++i) {
      const auto& f = o.via.array.ptr[i];
      if (f.type != msgpack::type::BIN) return Status("journal_corrupt", "frame is not bin");
      frames.emplace_back(f.via.bin.ptr, f.via.bin.size);
    }
    return frames;
  } catch (const std::exception& e) {
    return Status("journal_corrupt", std::string("body does not decode: ") + e.what());
  }
}

}  // namespace ecgq::broker
