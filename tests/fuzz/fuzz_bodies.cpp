// libFuzzer target: every msgpack body the broker, worker and client decode (job, result,
// progress, and the extension bodies: READY metadata, both heartbeat frames, mmi.*). Any bytes must
// decode or give a clean error: no crash, no sanitizer report, no allocation out of proportion to
// the input. A decoded job must encode and decode again.
#include <cstddef>
#include <cstdint>
#include <msgpack.hpp>
#include <string>

#include "protocol/extensions.hpp"
#include "protocol/msgpack_bounds.hpp"
#include "protocol/schema.hpp"

namespace {

// The bounds scan and msgpack-c agree: a body the scan passes unpacks whole, without error.
void check_scan_agrees(const std::string& body) {
  if (!ecgq::schema::check_msgpack_bounds(body).ok()) return;
  try {
    std::size_t offset = 0;
    auto oh = msgpack::unpack(body.data(), body.size(), offset);
    if (offset != body.size()) __builtin_trap();
  } catch (const std::exception&) {
    __builtin_trap();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace ecgq::schema;
  const std::string body(reinterpret_cast<const char*>(data), size);
  check_scan_agrees(body);
  if (auto job = decode_job(body); job.ok()) {
    if (!decode_job(encode_job(*job)).ok()) __builtin_trap();
  }
  (void)decode_result(body);
  (void)decode_progress(body);
  // Extension bodies: lenient decoders skip bad fields; what they return must encode again.
  namespace ext = ecgq::ext;
  ext::Skipped skipped;
  if (auto m = ext::decode_ready(body, &skipped); m.ok()) {
    if (!ext::decode_ready(ext::encode_ready(*m)).ok()) __builtin_trap();
  }
  if (auto s = ext::decode_worker_status(body, &skipped); s.ok()) {
    if (!ext::decode_worker_status(ext::encode_worker_status(*s)).ok()) __builtin_trap();
  }
  (void)ext::decode_broker_heartbeat(body, &skipped);
  if (auto c = ext::decode_cancel_request(body); c.ok()) {
    if (!ext::decode_cancel_request(ext::encode_cancel_request(*c)).ok()) __builtin_trap();
  }
  (void)ext::decode_cancel_reply(body);
  if (auto st = ext::decode_status(body, &skipped); st.ok()) {
    if (!ext::decode_status(ext::encode_status(*st)).ok()) __builtin_trap();
  }
  return 0;
}
