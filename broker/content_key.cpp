#include "broker/content_key.hpp"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "common/sha256.hpp"
#include "protocol/schema.hpp"
#include "protocol/schema_msgpack.hpp"

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

}  // namespace

std::string job_content_key(const Job& job, std::string_view samples) {
  std::vector<std::string> outputs = job.outputs;
  std::sort(outputs.begin(), outputs.end());
  outputs.erase(std::unique(outputs.begin(), outputs.end()), outputs.end());

  KeyHasher h;
  h.bytes(kDomain, sizeof kDomain - 1);
  h.str(job.ecg.dtype);
  h.u64(job.ecg.shape.size());
  for (int64_t d : job.ecg.shape) h.u64(static_cast<uint64_t>(d));
  h.bytes(samples.data(), samples.size());
  h.f64(job.fs);
  h.strings(job.leads);
  h.numbers(job.gain);
  h.numbers(job.baseline);
  h.str(job.units);
  h.strings(outputs);
  // "refuse" and absent mean the same; only "zero" changes what comes back (it is appended, so
  // the keys of every other job stay what they were).
  if (job.missing_leads == "zero") h.str(job.missing_leads);
  return h.digest();
}

Expected<std::string> job_content_key(const std::string& body) {
  // The decoder validates and normalises every field (numbers as doubles, nil as absent) and
  // points `samples` at the ecg.data bytes in `body` instead of copying them.
  std::string_view samples;
  auto job = detail::decode_job_body(body, /*copy_samples=*/false, &samples);
  if (!job) return job.status();
  return job_content_key(*job, samples);
}

}  // namespace ecgq::schema
