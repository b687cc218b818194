// Three peeks into bodies the broker otherwise forwards untouched: the id of a job it refused (to
// name it in the error) and the error code of a worker's result (for the counters).
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace ecgq::broker {

// The `error.code` of a result body, or "" for ok results and undecodable bodies.
std::string error_code_of(const std::string& body);
// The `wait_for_worker_ms` of a map body of any service (0 to 30 days), when it has one.
std::optional<int64_t> wait_for_worker_of(const std::string& body);
// The string `id` of a map body (its last occurrence, at most 256 bytes), or "" when there is
// none or the body is not a map.
std::string id_of(const std::string& body);

}  // namespace ecgq::broker
