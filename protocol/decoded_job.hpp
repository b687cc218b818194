// A job body decoded once and carried decoded: what the worker hands from receipt to preprocessing.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "common/status.hpp"
#include "protocol/schema.hpp"

namespace ecgq::schema {

// One job decoded where it arrived: the typed fields, and the samples left in the body bytes
// (a view, not a copy), which it keeps alive. A body of up to 128 MiB is parsed once and its
// samples are read once, by preprocessing; moving a DecodedJob moves no samples.
class DecodedJob {
 public:
  // Decodes `body` with every check of decode_job(); `owner` keeps the bytes alive for as long as
  // the DecodedJob (a ZeroMQ message, a string: whatever they arrived in).
  static Expected<DecodedJob> decode(std::string_view body, std::shared_ptr<const void> owner);
  // Decodes a body it takes over (tests, tools, bodies that already are strings).
  static Expected<DecodedJob> decode(std::string body);

  // Every field of the job except ecg.data, which stays empty: the bytes are samples().
  const Job& fields() const { return fields_; }
  // The job id ("" when the client set none and no broker assigned one).
  const std::string& id() const { return fields_.id; }
  // The ecg bytes (fields().ecg.dtype, .shape; validated against them) inside the body; empty
  // after release_samples().
  std::string_view samples() const { return samples_; }
  // Lets go of the body (samples() becomes empty): the caller has converted the samples, so a
  // big body need not outlive them.
  void release_samples();

 private:
  DecodedJob(Job fields, std::string_view samples, std::shared_ptr<const void> owner)
      : fields_(std::move(fields)), samples_(samples), owner_(std::move(owner)) {}

  Job fields_;
  std::string_view samples_;
  std::shared_ptr<const void> owner_;
};

}  // namespace ecgq::schema
