// Small msgpack readers for the few fields the broker looks at in bodies it otherwise forwards
// untouched (READY metadata, heartbeat status, result error codes, job ids).
#pragma once

#include <cstdint>
#include <functional>
#include <msgpack.hpp>
#include <string>

namespace ecgq::broker {

// The text of a msgpack str object.
std::string str(const msgpack::object& o);
// Reads an integer object into `out`; false for any other type.
bool as_int(const msgpack::object& o, int64_t& out);
// Calls `fn(key, value)` for each string-keyed entry of a msgpack map frame without copying
// strings or bins; false when the frame is not exactly one msgpack map.
bool for_each_field(const std::string& frame,
                    const std::function<void(const std::string&, const msgpack::object&)>& fn);
// The `error.code` of a result body, or "" for ok results and undecodable bodies.
std::string error_code_of(const std::string& body);
// The string `id` of a map body (its last occurrence), or "" when there is none.
std::string id_of(const std::string& body);

}  // namespace ecgq::broker
