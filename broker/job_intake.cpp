#include "broker/job_intake.hpp"

#include <string_view>

#include "broker/content_key.hpp"
#include "protocol/schema_msgpack.hpp"

namespace ecgq::broker {

Expected<JobIntake> read_job(const std::string& body, bool with_content_key) {
  std::string_view samples;
  auto job = schema::detail::decode_job_body(body, /*copy_samples=*/false, &samples);
  if (!job) return job.status();
  JobIntake in;
  in.id = std::move(job->id);
  in.deadline_ms = job->deadline_ms;
  in.wait_for_worker_ms = job->wait_for_worker_ms;
  in.meta = std::move(job->meta);
  in.model_sha256 = std::move(job->model_sha256);
  if (with_content_key && body.size() <= kMaxKeyedBodyBytes)
    in.content_key = schema::job_content_key(*job, samples);
  return in;
}

}  // namespace ecgq::broker
