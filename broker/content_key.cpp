#include "broker/content_key.hpp"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "protocol/schema.hpp"
#include "protocol/schema_msgpack.hpp"
#include "common/sha256.hpp"

namespace ecgq::schema {

namespace {

// Bump when the encoding below changes, so old and new keys never collide.
constexpr char kDomain[] = "ecgq-content-key-v1";

// Fixed-width little-endian integers and length-prefixed fields make the encoding unambiguous:
// no two different jobs feed the same byte stream.
class KeyHasher {
 public:
  void u64(uint64_t n) {
    uint8_t b[8];
    for (int i = 0; i < 8; ++i) b[i] = static_cast<uint8_t>(n >> (8 * i));
    sha_.update(b, sizeof b);
  }
  void f64(double d) {
    uint64_t bits = 0;
    std::memcpy(&bits, &d, sizeof bits);
    u64(bits);
  }
  void bytes(const char* p, size_t n) {
    u64(n);
    sha_.update(p, n);
  }
  void str(const std::string& s) { bytes(s.data(), s.size()); }
  void strings(const std::vector<std::string>& v) {
    u64(v.size());
    for (const auto& s : v) str(s);
  }
  void numbers(const std::vector<double>& v) {
    u64(v.size());
    for (double d : v) f64(d);
  }
  std::string digest() { return sha_.hex_digest(); }

 private:
  Sha256 sha_;
};

// The `ecg.data` bin of a validated job (the last `ecg` key, its last `data` key, as the decoder
// reads them), referenced in place.
const msgpack::object* samples_of(const msgpack::object& root) {
  const msgpack::object* ecg = nullptr;
  for (uint32_t i = 0; i < root.via.map.size; ++i)
    if (detail::key_of(root.via.map.ptr[i]) == "ecg") ecg = &root.via.map.ptr[i].val;
  if (ecg == nullptr || ecg->type != msgpack::type::MAP) return nullptr;
  const msgpack::object* data = nullptr;
  for (uint32_t i = 0; i < ecg->via.map.size; ++i)
    if (detail::key_of(ecg->via.map.ptr[i]) == "data") data = &ecg->via.map.ptr[i].val;
  return data != nullptr && data->type == msgpack::type::BIN ? data : nullptr;
}

}  // namespace

Expected<std::string> job_content_key(const std::string& body) {
  // The decoder validates and normalises every field (numbers as doubles, nil as absent); only
  // the samples, which it does not copy, are read from the parsed body directly.
  auto job = detail::decode_job_body(body, /*copy_samples=*/false);
  if (!job) return job.status();
  auto parsed = detail::parse_map(body);
  if (!parsed) return parsed.status();
  const msgpack::object* data = samples_of(parsed->get());
  if (data == nullptr) return Status("internal", "validated job has no ecg.data bin", "ecg.data");

  std::vector<std::string> outputs = job->outputs;
  std::sort(outputs.begin(), outputs.end());
  outputs.erase(std::unique(outputs.begin(), outputs.end()), outputs.end());

  KeyHasher h;
  h.bytes(kDomain, sizeof kDomain - 1);
  h.str(job->ecg.dtype);
  h.u64(job->ecg.shape.size());
  for (int64_t d : job->ecg.shape) h.u64(static_cast<uint64_t>(d));
  h.bytes(data->via.bin.ptr, data->via.bin.size);
  h.f64(job->fs);
  h.strings(job->leads);
  h.numbers(job->gain);
  h.numbers(job->baseline);
  h.str(job->units);
  h.strings(outputs);
  return h.digest();
}

}  // namespace ecgq::schema
