// The gateway's OpenAPI 3 document (GET /openapi.json): every route of the router, with the
// statuses it answers; a test sends real requests and checks the two agree.
#pragma once

#include <string>

#include "client/json_output.hpp"

namespace ecgq::gateway {

// The document for a gateway serving `model_name` under /v2/models/.
client::Json openapi_document(const std::string& model_name);

}  // namespace ecgq::gateway
