// The content key of an ecgq job: a digest of everything in a job body that can change its
// result, so that the broker's result cache recognises a re-submitted record under a new id.
#pragma once

#include <string>

#include "common/status.hpp"

namespace ecgq::schema {

// SHA-256 (64 hex characters) over a canonical encoding of the job's ecg (dtype, shape, raw
// bytes), fs, leads, gain, baseline, units and outputs (as a sorted set; empty = model default).
// id, meta, deadline_ms and dispatch are not part of it, nor is key order. Validates the body as
// decode_job does and returns its errors; copies no samples.
Expected<std::string> job_content_key(const std::string& body);

}  // namespace ecgq::schema
