// Two peeks into bodies the broker otherwise forwards untouched: the id of a job it refused (to
// name it in the error) and the error code of a worker's result (for the counters).
#pragma once

#include <string>

namespace ecgq::broker {

// The `error.code` of a result body, or "" for ok results and undecodable bodies.
std::string error_code_of(const std::string& body);
// The string `id` of a map body (its last occurrence, at most 256 bytes), or "" when there is
// none or the body is not a map.
std::string id_of(const std::string& body);

}  // namespace ecgq::broker
