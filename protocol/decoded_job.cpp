#include "protocol/decoded_job.hpp"

#include "protocol/schema_msgpack.hpp"

namespace ecgq::schema {

Expected<DecodedJob> DecodedJob::decode(std::string_view body, std::shared_ptr<const void> owner) {
  std::string_view samples;
  auto decoded = detail::decode_job_body(body, /*copy_samples=*/false, &samples);
  if (!decoded) return decoded.status();
  return DecodedJob(std::move(decoded.value()), samples, std::move(owner));
}

Expected<DecodedJob> DecodedJob::decode(std::string body) {
  // The string lives in the shared block, so views into it stay valid however the handle moves.
  auto owned = std::make_shared<const std::string>(std::move(body));
  const std::string_view bytes(*owned);
  return decode(bytes, std::move(owned));
}

void DecodedJob::release_samples() {
  samples_ = {};
  owner_.reset();
}

}  // namespace ecgq::schema
