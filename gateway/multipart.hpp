// multipart/form-data bodies (RFC 7578, RFC 2046 section 5.1) as the /predict upload sends them.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "common/status.hpp"

namespace ecgq::gateway {

// One part of a form: a field or an uploaded file; `data` points into the request body.
struct FormPart {
  std::string name;          // Content-Disposition name
  std::string filename;      // Content-Disposition filename ("" for plain fields)
  std::string content_type;  // the part's Content-Type, or ""
  std::string_view data;     // the part's bytes
};

// Parts at most in one form, and bytes of one part's headers at most.
inline constexpr size_t kMaxFormParts = 64;
inline constexpr size_t kMaxPartHeaderBytes = 8192;

// The boundary parameter of a multipart/form-data Content-Type; bad_request (field
// content-type) when absent or malformed.
Expected<std::string> multipart_boundary(const std::string& content_type);
// Splits `body` into its parts; bad_request (field "body") naming what is wrong: no opening
// boundary, a part without Content-Disposition, a truncated body, too many parts.
Expected<std::vector<FormPart>> parse_multipart(std::string_view body, const std::string& boundary);
// The value of parameter `name` in a header value such as `form-data; name="file"` ("" if absent).
std::string header_parameter(const std::string& value, const std::string& name);

}  // namespace ecgq::gateway
