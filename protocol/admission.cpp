#include "protocol/admission.hpp"

#include "protocol/map_writer.hpp"
#include "protocol/schema.hpp"
#include "protocol/schema_msgpack.hpp"

namespace ecgq::ext {

namespace {

using schema::MapWriter;

// The value of `key` in map `o` (its last occurrence), nullptr when absent.
const msgpack::object* find(const msgpack::object& o, const std::string& key) {
  const msgpack::object* found = nullptr;
  for (uint32_t i = 0; i < o.via.map.size; ++i)
    if (schema::detail::key_of(o.via.map.ptr[i]) == key) found = &o.via.map.ptr[i].val;
  return found;
}

// The string at `key`, "" when absent; an error naming the key when it is not a string.
Expected<std::string> text(const msgpack::object& o, const std::string& key) {
  const msgpack::object* v = find(o, key);
  if (v == nullptr || v->type == msgpack::type::NIL) return std::string();
  return schema::detail::get_string(*v, key);
}

// The integer at `key`, 0 when absent or not an integer.
int64_t count(const msgpack::object& o, const std::string& key) {
  const msgpack::object* v = find(o, key);
  if (v == nullptr) return 0;
  auto n = schema::detail::get_integer(*v, key);
  return n ? *n : 0;
}

}  // namespace

bool is_sha256_hex(const std::string& text) {
  return text.size() == 64 && text.find_first_not_of("0123456789abcdef") == std::string::npos;
}

std::string encode_refusal(const WorkerRefusal& refusal) {
  return MapWriter()
      .add("v", schema::kVersion)
      .add("code", refusal.code)
      .add("message", refusal.message)
      .finish();
}

Expected<WorkerRefusal> decode_refusal(const std::string& frame) {
  ASSIGN_OR_RETURN(auto parsed, schema::detail::parse_map(frame));
  WorkerRefusal r;
  ASSIGN_OR_RETURN(r.code, text(parsed.get(), "code"));
  if (r.code.empty()) return Status(ErrorCode::BadRequest, "refusal without a code", "code");
  ASSIGN_OR_RETURN(r.message, text(parsed.get(), "message"));
  return r;
}

std::string encode_rollout_request(const RolloutRequest& request) {
  return MapWriter().add("service", request.service).add("to", request.to).finish();
}

Expected<RolloutRequest> decode_rollout_request(const std::string& body) {
  ASSIGN_OR_RETURN(auto parsed, schema::detail::parse_map(body));
  RolloutRequest r;
  ASSIGN_OR_RETURN(r.service, text(parsed.get(), "service"));
  if (r.service.empty())
    return Status(ErrorCode::BadRequest, "service: the service to roll out is missing", "service");
  ASSIGN_OR_RETURN(r.to, text(parsed.get(), "to"));
  if (!is_sha256_hex(r.to))
    return Status(ErrorCode::BadRequest,
                  "to must be the new model's sha256 (64 lowercase hex digits), got " +
                      std::to_string(r.to.size()) + " characters",
                  "to");
  return r;
}

std::string encode_rollout_reply(const RolloutReply& reply) {
  return MapWriter()
      .add("v", schema::kVersion)
      .add("service", reply.service)
      .add("from", reply.from)
      .add("to", reply.to)
      .add("draining", reply.draining)
      .add("serving", reply.serving)
      .finish();
}

Expected<RolloutReply> decode_rollout_reply(const std::string& body) {
  ASSIGN_OR_RETURN(auto parsed, schema::detail::parse_map(body));
  const msgpack::object& o = parsed.get();
  if (find(o, "status") != nullptr) {
    // The broker refused the request: its error result.
    ASSIGN_OR_RETURN(auto result, schema::decode_result(body));
    if (result.error) return Status(result.error->code, result.error->message, result.error->field);
  }
  RolloutReply r;
  ASSIGN_OR_RETURN(r.service, text(o, "service"));
  ASSIGN_OR_RETURN(r.from, text(o, "from"));
  ASSIGN_OR_RETURN(r.to, text(o, "to"));
  r.draining = count(o, "draining");
  r.serving = count(o, "serving");
  return r;
}

}  // namespace ecgq::ext
