#include "broker/msgpack_fields.hpp"

#include <functional>
#include <msgpack.hpp>

#include "protocol/msgpack_bounds.hpp"

namespace ecgq::broker {

namespace {

bool reference_all(msgpack::type::object_type, std::size_t, void*) {
  return true;
}

std::string str(const msgpack::object& o) {
  return std::string(o.via.str.ptr, o.via.str.size);
}

// Calls `fn(key, value)` for each string-keyed entry of a msgpack map frame without copying
// strings or bins; false when the frame is not exactly one msgpack map. The limits are wider
// than a job's for strings and bins (these peeks must work on bodies the decoder refused), and
// as tight for containers, so a hostile header cannot make the broker allocate gigabytes.
bool for_each_field(const std::string& frame,
                    const std::function<void(const std::string&, const msgpack::object&)>& fn) {
  if (!schema::check_msgpack_bounds(frame).ok()) return false;
  try {
    size_t off = 0;
    const msgpack::unpack_limit limits(1u << 16, 1u << 12, 0xffffffff, 0xffffffff, 1u << 20, 16);
    auto oh = msgpack::unpack(frame.data(), frame.size(), off, &reference_all, nullptr, limits);
    if (off != frame.size() || oh.get().type != msgpack::type::MAP) return false;
    const auto& m = oh.get().via.map;
    for (uint32_t i = 0; i < m.size; ++i)
      if (m.ptr[i].key.type == msgpack::type::STR) fn(str(m.ptr[i].key), m.ptr[i].val);
    return true;
  } catch (const std::exception&) {
    return false;
  }
}

}  // namespace

std::string error_code_of(const std::string& body) {
  std::string code;
  for_each_field(body, [&](const std::string& k, const msgpack::object& v) {
    if (k != "error" || v.type != msgpack::type::MAP) return;
    for (uint32_t i = 0; i < v.via.map.size; ++i) {
      const auto& kv = v.via.map.ptr[i];
      if (kv.key.type == msgpack::type::STR && str(kv.key) == "code" &&
          kv.val.type == msgpack::type::STR)
        code = str(kv.val);
    }
  });
  return code;
}

std::optional<int64_t> wait_for_worker_of(const std::string& body) {
  std::optional<int64_t> ms;
  for_each_field(body, [&](const std::string& k, const msgpack::object& v) {
    if (k != "wait_for_worker_ms") return;
    if (v.type == msgpack::type::POSITIVE_INTEGER && v.via.u64 <= uint64_t{30} * 24 * 3600 * 1000)
      ms = static_cast<int64_t>(v.via.u64);
  });
  return ms;
}

std::string id_of(const std::string& body) {
  std::string id;
  for_each_field(body, [&](const std::string& k, const msgpack::object& v) {
    if (k == "id" && v.type == msgpack::type::STR && v.via.str.size <= 256) id = str(v);
  });
  return id;
}

}  // namespace ecgq::broker
