// The JSON the CLI prints: one object per record (results and local errors alike), and the
// mmi.status body as JSON.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "common/status.hpp"
#include "protocol/schema.hpp"

namespace ecgq::client {

// Key order is part of the output's readability, so objects keep insertion order.
using Json = nlohmann::ordered_json;

// The line for one record: path, id, status, error?, cold_start, attempts, worker, model,
// n_segments, timings, probs?, logits?, embedding?, segment_probs?, saliency?, derived_leads,
// masked_leads?, ignored_channels. Only the outputs in `outputs` are printed (empty = probs only),
// whatever else the worker sent.
Json result_json(const std::string& path, const schema::Result& result,
                 const std::vector<std::string>& outputs = {});
// `json` as one line of text; strings holding bytes that are not UTF-8 (paths, CSV cells, error
// messages) have those bytes written as \xNN instead of aborting the dump.
std::string json_line(const Json& json);
// Any msgpack body as JSON (bin as base64-free byte count, maps with non-string keys stringified).
Expected<Json> msgpack_json(const std::string& body);

}  // namespace ecgq::client
