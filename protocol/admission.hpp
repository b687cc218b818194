// The bodies of worker admission (docs/protocol.md sections 4.7 and 5): the refusal a broker
// sends with DISCONNECT to a worker it will not admit, and the mmi.rollout request and reply
// that change the model a service serves.
#pragma once

#include <cstdint>
#include <string>

#include "common/status.hpp"

namespace ecgq::ext {

// Why the broker refused or retired a worker: frame 3 of an ecgq DISCONNECT (a strict RFC 18
// worker ignores it). `code` is model_mismatch (its model is not the service's), model_retired
// (a rollout replaced its model and its jobs are done) or queue_full (its service would be one
// more than max_services).
struct WorkerRefusal {
  std::string code;
  std::string message;  // names both models
};
// Encodes {v, code, message}.
std::string encode_refusal(const WorkerRefusal& refusal);
// Decodes a refusal; fails when the frame is not a map with a string `code`.
Expected<WorkerRefusal> decode_refusal(const std::string& frame);

// An mmi.rollout request: make `service` serve the model whose sha256 is `to`.
struct RolloutRequest {
  std::string service;
  std::string to;  // 64 lowercase hex digits
};
// Encodes {service, to}.
std::string encode_rollout_request(const RolloutRequest& request);
// Decodes strictly: bad_request naming `service` or `to` (64 lowercase hex digits).
Expected<RolloutRequest> decode_rollout_request(const std::string& body);

// An mmi.rollout reply.
struct RolloutReply {
  std::string service;
  std::string from;      // the sha256 it served before ("" when none)
  std::string to;        // the sha256 it admits from now on
  int64_t draining = 0;  // workers of other models now finishing their jobs
  int64_t serving = 0;   // workers of `to` registered now
};
// Encodes {v, service, from, to, draining, serving}.
std::string encode_rollout_reply(const RolloutReply& reply);
// Decodes a reply; an error result (the broker refused the request) is returned as its Status.
Expected<RolloutReply> decode_rollout_reply(const std::string& body);

// True when `text` is 64 lowercase hex digits, the form of every sha256 on the wire.
bool is_sha256_hex(const std::string& text);

}  // namespace ecgq::ext
