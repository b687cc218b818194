// What the broker reads from an ecgq job body: one decode on receipt (the same checks, in the
// same order, as the worker's decode_job), producing everything the broker needs at once. The
// samples are neither copied nor parsed again; the body itself is forwarded untouched.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

#include "common/status.hpp"

namespace ecgq::broker {

// The decoded parts of a job body the broker uses.
struct JobIntake {
  std::string id;                      // "" when the client set none (the broker assigns one)
  std::optional<int64_t> deadline_ms;  // budget from receipt, when the job has one
  std::optional<int64_t> wait_for_worker_ms;  // how long it may wait for a worker, when set
  std::string content_key;             // result-cache key; "" unless asked for
  std::string meta;                    // raw msgpack of `meta`, echoed by a cache hit
  std::string model_sha256;            // the model the job must run on ("" = any)
};

// Bodies larger than this get no content key (the result cache neither serves nor keeps them):
// hashing runs on the broker's loop, and 100 MiB of samples would hold every other peer for
// ~100 ms. A 12-lead 10 s record is 240 KB; a 30-minute f32 Holter strip is 86 MB.
inline constexpr size_t kMaxKeyedBodyBytes = size_t{16} << 20;

// Decodes and validates `body`; errors are the decoder's (bad_request, bad_shape,
// unsupported_dtype, naming the field). The content key hashes every sample, so it is computed
// only when `with_content_key` (the result cache is on) and the body is at most
// kMaxKeyedBodyBytes.
Expected<JobIntake> read_job(const std::string& body, bool with_content_key);

}  // namespace ecgq::broker
