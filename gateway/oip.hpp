// The Open Inference Protocol (KServe v2, as Triton serves it) over REST/JSON: the inference
// request and response, model metadata and the error body, exactly as the protocol writes them.
// The model has one input, `ecg` ([leads, samples], FP32, or INT16 with a `gain` parameter), and
// the outputs `probs` [labels], `embedding` [width], `logits` [labels] and, when asked,
// `segment_probs` [segments, labels] and `segment_embeddings` [segments, width].
#pragma once

#include <string>
#include <vector>

#include "client/json_output.hpp"
#include "common/status.hpp"
#include "protocol/schema.hpp"

namespace ecgq::gateway::oip {

// The one version of the model a gateway serves (/v2/models/NAME/versions/1/...).
inline constexpr const char* kModelVersion = "1";

// The outputs the model declares, in metadata order.
inline const std::vector<std::string> kOutputs = {"probs", "embedding", "logits", "segment_probs",
                                                  "segment_embeddings"};
// The outputs returned when a request names none.
inline const std::vector<std::string> kDefaultOutputs = {"probs", "embedding"};

// A decoded inference request.
struct InferRequest {
  std::string id;                    // the request's "id" ("" when absent)
  schema::Job job;                   // the ECG with fs, leads, gain and the job outputs
  std::vector<std::string> outputs;  // the v2 output names to return, in order
};

// Decodes an inference request body; errors are bad_request (or bad_shape,
// unsupported_dtype) with the offending field, e.g. "inputs[0].shape".
Expected<InferRequest> parse_infer(const std::string& body);
// The inference response for an ok result.
client::Json infer_response(const std::string& model_name, const std::string& request_id,
                            const schema::Result& result, const std::vector<std::string>& outputs);
// The model metadata response; `labels` may be empty (not learned yet: shape -1).
client::Json model_metadata(const std::string& model_name, const std::vector<std::string>& labels,
                            int64_t embedding_width);
// The error body every v2 endpoint answers with: {"error": message}.
client::Json error_body(const std::string& message);

}  // namespace ecgq::gateway::oip
