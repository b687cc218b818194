// ZeroMQ endpoint checks, so a mistyped --broker or --bind is a usage error naming what was
// expected instead of an exception from libzmq.
#pragma once

#include <string>

#include "common/status.hpp"

namespace ecgq::mdp {

// How an endpoint will be used: connected to (a host is required) or bound (`*` allowed).
enum class EndpointUse { Connect, Bind };

// Ok when `endpoint` is tcp://HOST:PORT (PORT 1-65535; `*` or `*:PORT` style wildcards only for
// Bind, where PORT may also be `*`), ipc://PATH or inproc://NAME. Otherwise bad_usage naming
// `flag` (e.g. "--broker") and the expected form.
Status check_endpoint(const std::string& endpoint, EndpointUse use, const std::string& flag);

}  // namespace ecgq::mdp
