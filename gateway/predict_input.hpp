// What a POST /predict asks for: the record (uploaded files or JSON samples) turned into the same
// job `ecgq submit` would send for those files, and the request's fields.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/status.hpp"
#include "gateway/http_message.hpp"
#include "protocol/schema.hpp"

namespace ecgq::gateway {

// The request fields of /predict (query string, form fields, or JSON keys).
struct PredictFields {
  std::vector<std::string> outputs;    // empty = the model default (probs)
  double fs = 0;                       // sample rate of files without one; required for JSON
  std::vector<std::string> leads;      // lead names of files without names
  std::optional<int64_t> deadline_ms;  // budget from broker receipt
  std::string missing_leads;           // "zero": underivable leads go as zeros ("" = refuse)
  bool async = false;                  // ?async=1: answer 202 at once
};

// A decoded /predict request.
struct PredictInput {
  schema::Job job;   // id not set yet
  std::string path;  // the uploaded record's file name ("" for JSON samples)
  PredictFields fields;
};

// Upload limits: files per request and characters of a file name.
inline constexpr size_t kMaxUploadFiles = 16;
inline constexpr size_t kMaxFileName = 128;

// Sets one request field by name (outputs, fs, leads, deadline, missing_leads, async); unknown
// names are
// bad_request naming the field.
Status set_field(PredictFields& fields, const std::string& name, const std::string& value);
// Reads a multipart upload or a JSON body into a job; uploads go through files in a fresh
// private directory under `upload_dir` that is removed before returning. Errors carry the code
// and field to answer with (unsupported_media_type for other content types).
Expected<PredictInput> read_predict(const HttpRequest& request, const std::string& upload_dir);
// A comma-separated list, items trimmed, empty items dropped.
std::vector<std::string> split_list(const std::string& text);
// Checks output names against the model's (unsupported_output naming the first unknown one).
Status check_outputs(const std::vector<std::string>& outputs);
// An f32 job from lead-major samples, checking the lead names (12 rows default to the model
// leads) and the rate.
Expected<schema::Job> job_from_samples(std::vector<float> samples, int64_t n_leads,
                                       int64_t n_samples, double fs,
                                       std::vector<std::string> leads);

}  // namespace ecgq::gateway
