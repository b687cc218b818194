// The parts of the job schema the broker needs: a validating peek at a job body that copies no
// samples, appending the dispatch info without re-encoding, and error results. The rest of
// schema.hpp lives in schema.cpp.
#include <cmath>
#include <utility>

#include "common/schema.hpp"
#include "common/schema_msgpack.hpp"

namespace ecgq::schema {

namespace {

using msgpack::type::object_type;

Status bad_request(const std::string& message, const std::string& field) {
  return Status("bad_request", message, field);
}

// Writes a msgpack map header with `n` entries in its shortest form.
void write_map_header(std::string& out, uint32_t n) {
  if (n < 16) {
    out.push_back(static_cast<char>(0x80 | n));
  } else if (n <= 0xffff) {
    out.push_back(static_cast<char>(0xde));
    out.push_back(static_cast<char>(n >> 8));
    out.push_back(static_cast<char>(n & 0xff));
  } else {
    out.push_back(static_cast<char>(0xdf));
    for (int shift = 24; shift >= 0; shift -= 8)
      out.push_back(static_cast<char>((n >> shift) & 0xff));
  }
}

// Reads a map header; returns its size in bytes (0 when `body` does not start with a map).
size_t read_map_header(const std::string& body, uint32_t& n) {
  if (body.empty()) return 0;
  const auto b = [&](size_t i) { return static_cast<uint32_t>(static_cast<uint8_t>(body[i])); };
  const uint32_t t = b(0);
  if ((t & 0xf0) == 0x80) {
    n = t & 0x0f;
    return 1;
  }
  if (t == 0xde && body.size() >= 3) {
    n = (b(1) << 8) | b(2);
    return 3;
  }
  if (t == 0xdf && body.size() >= 5) {
    n = (b(1) << 24) | (b(2) << 16) | (b(3) << 8) | b(4);
    return 5;
  }
  return 0;
}

}  // namespace

// Mirrors decode_job() check for check, in the same order, so that the broker refuses exactly
// what a worker would refuse; only the sample bytes are left in place instead of copied.
Expected<JobEnvelope> peek_job(const std::string& body) {
  auto parsed = detail::parse_map(body);
  if (!parsed) return parsed.status();
  const msgpack::object& root = parsed->get();

  const msgpack::object* v = nullptr;
  const msgpack::object* id = nullptr;
  const msgpack::object* ecg = nullptr;
  const msgpack::object* fs = nullptr;
  const msgpack::object* leads = nullptr;
  const msgpack::object* gain = nullptr;
  const msgpack::object* baseline = nullptr;
  const msgpack::object* units = nullptr;
  const msgpack::object* outputs = nullptr;
  const msgpack::object* deadline = nullptr;
  for (uint32_t i = 0; i < root.via.map.size; ++i) {
    const auto& kv = root.via.map.ptr[i];
    const std::string k = detail::key_of(kv);
    const msgpack::object* val = &kv.val;
    if (k == "v")
      v = val;
    else if (k == "id")
      id = val;
    else if (k == "ecg")
      ecg = val;
    else if (k == "fs")
      fs = val;
    else if (k == "leads")
      leads = val;
    else if (k == "gain")
      gain = val;
    else if (k == "baseline")
      baseline = val;
    else if (k == "units")
      units = val;
    else if (k == "outputs")
      outputs = val;
    else if (k == "deadline_ms")
      deadline = val;
  }
  auto present = [](const msgpack::object* o) {
    return o != nullptr && o->type != object_type::NIL;
  };

  if (v == nullptr) return bad_request("missing schema version v (expected 1)", "v");
  auto version = detail::get_integer(*v, "v");
  if (!version) return version.status();
  if (*version != kVersion)
    return bad_request(
        "unsupported schema version " + std::to_string(*version) + " (this build speaks 1)", "v");
  JobEnvelope env;
  if (present(id)) {
    auto s = detail::get_string(*id, "id");
    if (!s) return s.status();
    env.id = *s;
  }
  if (ecg == nullptr)
    return bad_request("missing ecg (a map {dtype, shape: [leads, samples], data})", "ecg");
  auto arr = detail::decode_typed_array(*ecg, "ecg", 2, /*copy_data=*/false);
  if (!arr) return arr.status();
  const int64_t n_leads = arr->shape[0];

  if (fs == nullptr) return bad_request("missing fs (sample rate in Hz)", "fs");
  auto f = detail::get_number(*fs, "fs");
  if (!f) return f.status();
  if (!std::isfinite(*f) || *f <= 0)
    return bad_request("fs must be a finite number > 0, got " + std::to_string(*f), "fs");

  if (leads == nullptr) return bad_request("missing leads (one name per row of ecg)", "leads");
  auto l = detail::get_strings(*leads, "leads");
  if (!l) return l.status();
  if (static_cast<int64_t>(l->size()) != n_leads)
    return bad_request("leads has " + std::to_string(l->size()) + " names but ecg.shape[0] is " +
                           std::to_string(n_leads),
                       "leads");

  for (auto [o, name] : {std::pair{gain, "gain"}, std::pair{baseline, "baseline"}}) {
    if (!present(o)) continue;
    auto vals = detail::get_numbers(*o, name);
    if (!vals) return vals.status();
    const size_t k = vals->size();
    if (k != 0 && k != 1 && static_cast<int64_t>(k) != n_leads)
      return bad_request(std::string(name) + " has " + std::to_string(k) +
                             " values; expected 0, 1 or one per lead (" + std::to_string(n_leads) +
                             ")",
                         name);
    const bool is_gain = o == gain;
    for (double d : *vals)
      if (!std::isfinite(d) || (is_gain && d == 0))
        return bad_request(
            std::string(name) + " values must be finite" + (is_gain ? " and non-zero" : ""), name);
  }
  if (present(units)) {
    auto u = detail::get_string(*units, "units");
    if (!u) return u.status();
  }
  if (present(outputs)) {
    auto o = detail::get_strings(*outputs, "outputs");
    if (!o) return o.status();
    for (const auto& name : *o) {
      bool known = false;
      for (const auto& k : kOutputNames) known = known || k == name;
      if (!known)
        return bad_request("unknown output \"" + name +
                               "\" (expected probs, logits, embedding, segments or saliency)",
                           "outputs");
    }
  }
  if (present(deadline)) {
    auto d = detail::get_integer(*deadline, "deadline_ms");
    if (!d) return d.status();
    if (*d < 0)
      return bad_request("deadline_ms must be >= 0, got " + std::to_string(*d), "deadline_ms");
    env.deadline_ms = *d;
  }
  return env;
}

std::string add_dispatch(const std::string& body, const DispatchInfo& dispatch,
                         const std::string& assigned_id) {
  uint32_t n = 0;
  const size_t header = read_map_header(body, n);
  if (header == 0) return body;  // not a map: peek_job refused it long before this point
  const uint32_t extra = assigned_id.empty() ? 1 : 2;
  std::string out;
  out.reserve(body.size() + 64 + assigned_id.size());
  write_map_header(out, n + extra);
  out.append(body, header, std::string::npos);
  msgpack::sbuffer tail;
  msgpack::packer<msgpack::sbuffer> pk(tail);
  detail::pack_key(pk, "dispatch");
  detail::pack_dispatch(pk, dispatch);
  if (!assigned_id.empty()) {
    pk.pack(std::string("id"));
    pk.pack(assigned_id);
  }
  out.append(tail.data(), tail.size());
  return out;
}

std::string error_result(const std::string& id, const std::string& code, const std::string& message,
                         const std::string& field, std::optional<int64_t> retry_after_ms,
                         int64_t attempts) {
  msgpack::sbuffer buf;
  msgpack::packer<msgpack::sbuffer> pk(buf);
  pk.pack_map(5);
  pk.pack(std::string("v"));
  pk.pack(kVersion);
  pk.pack(std::string("id"));
  pk.pack(id);
  pk.pack(std::string("status"));
  pk.pack(std::string("error"));
  pk.pack(std::string("error"));
  pk.pack_map(retry_after_ms ? 4 : 3);
  pk.pack(std::string("code"));
  pk.pack(code);
  pk.pack(std::string("message"));
  pk.pack(message);
  pk.pack(std::string("field"));
  pk.pack(field);
  if (retry_after_ms) {
    pk.pack(std::string("retry_after_ms"));
    pk.pack(*retry_after_ms);
  }
  pk.pack(std::string("attempts"));
  pk.pack(attempts);
  return std::string(buf.data(), buf.size());
}

}  // namespace ecgq::schema
