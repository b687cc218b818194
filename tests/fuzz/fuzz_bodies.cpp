// libFuzzer target: every msgpack body the broker, worker and client decode (job, result,
// progress). Any bytes must decode or give a clean error: no crash, no sanitizer report, no
// allocation out of proportion to the input. A decoded job must encode and decode again.
#include <cstddef>
#include <cstdint>
#include <string>

#include "protocol/schema.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace ecgq::schema;
  const std::string body(reinterpret_cast<const char*>(data), size);
  if (auto job = decode_job(body); job.ok()) {
    if (!decode_job(encode_job(*job)).ok()) __builtin_trap();
  }
  (void)decode_result(body);
  (void)decode_progress(body);
  return 0;
}
