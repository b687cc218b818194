// Errors as HTTP answers: the status for each ecgq error code and the JSON error body
// {error: {code, message, field}} of the ECG-FM API.
#pragma once

#include <optional>
#include <string>

#include "client/json_output.hpp"
#include "gateway/http_message.hpp"

namespace ecgq::gateway {

// The HTTP status of an error code (docs/gateway.md has the table): input errors 400, auth
// 401/403, 404, 413, 415, queue_full 429, unavailable 503, deadlines 504, worker faults 502.
int http_status(const std::string& code);
// A JSON answer.
HttpResponse json_response(int status, const client::Json& body);
// The error answer for `code`; `retry_after_ms` (queue_full) sets Retry-After, and every 429/503
// gets one (at least 1 s).
HttpResponse error_response(const std::string& code, const std::string& message,
                            const std::string& field = {},
                            std::optional<int64_t> retry_after_ms = std::nullopt,
                            const std::string& job_id = {});

}  // namespace ecgq::gateway
