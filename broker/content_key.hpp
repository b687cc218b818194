// The content key of an ecgq job: a digest of everything in a job body that can change its
// result, so that the broker's result cache recognises a re-submitted record under a new id.
#pragma once

#include <string>
#include <string_view>

#include "common/status.hpp"
#include "protocol/schema.hpp"

namespace ecgq::schema {

// SHA-256 (64 hex characters) over a canonical encoding of the job's ecg (dtype, shape, raw
// bytes `samples`, which the job itself need not hold), fs, leads, gain, baseline, units and
// outputs (as a sorted set; empty = model default). id, meta, deadline_ms and dispatch are not
// part of it, nor is key order.
std::string job_content_key(const Job& job, std::string_view samples);
// The content key of an encoded job body: validates it as decode_job does and returns its
// errors; copies no samples.
Expected<std::string> job_content_key(const std::string& body);

}  // namespace ecgq::schema
