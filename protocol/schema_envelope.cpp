// The parts of the job schema the broker needs: a validating peek at a job body that copies no
// samples, appending the dispatch info without re-encoding, and error results. The rest of
// schema.hpp lives in schema.cpp.
#include <cmath>
#include <utility>

#include "protocol/schema.hpp"
#include "protocol/schema_msgpack.hpp"

namespace ecgq::schema {

namespace {

// Writes a msgpack map header with `n` entries in its shortest form.
void write_map_header(std::string& out, uint32_t n) {
  if (n < 16) {
    out.push_back(static_cast<char>(0x80 | n));
  } else if (n <= 0xffff) {
    out.push_back(static_cast<char>(0xde));
    out.push_back(static_cast<char>(n >> 8));
    out.push_back(static_cast<char>(n & 0xff));
  } else {
    out.push_back(static_cast<char>(0xdf));
    for (int shift = 24; shift >= 0; shift -= 8)
      out.push_back(static_cast<char>((n >> shift) & 0xff));
  }
}

// Reads a map header; returns its size in bytes (0 when `body` does not start with a map).
size_t read_map_header(const std::string& body, uint32_t& n) {
  if (body.empty()) return 0;
  const auto b = [&](size_t i) { return static_cast<uint32_t>(static_cast<uint8_t>(body[i])); };
  const uint32_t t = b(0);
  if ((t & 0xf0) == 0x80) {
    n = t & 0x0f;
    return 1;
  }
  if (t == 0xde && body.size() >= 3) {
    n = (b(1) << 8) | b(2);
    return 3;
  }
  if (t == 0xdf && body.size() >= 5) {
    n = (b(1) << 24) | (b(2) << 16) | (b(3) << 8) | b(4);
    return 5;
  }
  return 0;
}

}  // namespace

// Mirrors decode_job() check for check, in the same order, so that the broker refuses exactly
// what a worker would refuse; only the sample bytes are left in place instead of copied.
Expected<JobEnvelope> peek_job(const std::string& body) {
  ASSIGN_OR_RETURN(auto job, detail::decode_job_body(body, /*copy_samples=*/false));
  return JobEnvelope{job.id, job.deadline_ms, job.model_sha256};
}

std::string add_dispatch(const std::string& body, const DispatchInfo& dispatch,
                         const std::string& assigned_id) {
  uint32_t n = 0;
  const size_t header = read_map_header(body, n);
  if (header == 0) return body;  // not a map: peek_job refused it long before this point
  const uint32_t extra = assigned_id.empty() ? 1 : 2;
  std::string out;
  out.reserve(body.size() + 64 + assigned_id.size());
  write_map_header(out, n + extra);
  out.append(body, header, std::string::npos);
  msgpack::sbuffer tail;
  msgpack::packer<msgpack::sbuffer> pk(tail);
  detail::pack_key(pk, "dispatch");
  detail::pack_dispatch(pk, dispatch);
  if (!assigned_id.empty()) {
    pk.pack(std::string("id"));
    pk.pack(assigned_id);
  }
  out.append(tail.data(), tail.size());
  return out;
}

std::string error_result(const std::string& id, const std::string& code, const std::string& message,
                         const std::string& field, std::optional<int64_t> retry_after_ms,
                         int64_t attempts) {
  msgpack::sbuffer buf;
  msgpack::packer<msgpack::sbuffer> pk(buf);
  pk.pack_map(5);
  pk.pack(std::string("v"));
  pk.pack(kVersion);
  pk.pack(std::string("id"));
  pk.pack(id);
  pk.pack(std::string("status"));
  pk.pack(std::string("error"));
  pk.pack(std::string("error"));
  pk.pack_map(retry_after_ms ? 4 : 3);
  pk.pack(std::string("code"));
  pk.pack(code);
  pk.pack(std::string("message"));
  pk.pack(message);
  pk.pack(std::string("field"));
  pk.pack(field);
  if (retry_after_ms) {
    pk.pack(std::string("retry_after_ms"));
    pk.pack(*retry_after_ms);
  }
  pk.pack(std::string("attempts"));
  pk.pack(attempts);
  return std::string(buf.data(), buf.size());
}

}  // namespace ecgq::schema
