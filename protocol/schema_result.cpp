// msgpack encoding of result (FINAL) and progress (PARTIAL) bodies. probs and logits travel as
// maps label -> value when the labels are known, so a reader needs no side table.
#include <cmath>
#include <string>

#include "protocol/schema.hpp"
#include "protocol/schema_msgpack.hpp"

namespace ecgq::schema {

using detail::pack_key;
using detail::Packer;

namespace {

Status bad_result(const std::string& message, const std::string& field) {
  return Status(ErrorCode::BadResult, message, field);
}

// Relabels decode errors: a malformed result is the peer's fault, not a bad request of ours.
Status as_bad_result(const Status& s) {
  return bad_result(s.message(), s.field());
}

void pack_floats(Packer& pk, const std::vector<float>& values) {
  pk.pack_array(static_cast<uint32_t>(values.size()));
  for (float f : values) detail::pack_f32(pk, f);
}

// A map label -> value when every value has a label, else a plain array.
void pack_labelled(Packer& pk, const std::vector<std::string>& labels,
                   const std::vector<float>& values) {
  if (labels.empty() || labels.size() != values.size()) {
    pack_floats(pk, values);
    return;
  }
  pk.pack_map(static_cast<uint32_t>(values.size()));
  for (size_t i = 0; i < values.size(); ++i) {
    pk.pack(labels[i]);
    detail::pack_f32(pk, values[i]);
  }
}

void pack_strings(Packer& pk, const std::vector<std::string>& values) {
  pk.pack(values);
}

// Reads an array of numbers or a map label -> number (filling `labels` when still empty).
Status get_float_list(const msgpack::object& o, const std::string& field, std::vector<float>& out,
                      std::vector<std::string>& labels) {
  out.clear();
  if (o.type == msgpack::type::MAP) {
    std::vector<std::string> names;
    for (uint32_t i = 0; i < o.via.map.size; ++i) {
      const auto& kv = o.via.map.ptr[i];
      if (kv.key.type != msgpack::type::STR || !detail::is_number(kv.val)) {
        return bad_result(field + " must map label strings to numbers", field);
      }
      names.push_back(detail::key_of(kv));
      out.push_back(static_cast<float>(*detail::get_number(kv.val, field)));
    }
    if (labels.empty()) labels = std::move(names);
    return Status::Ok();
  }
  auto v = detail::get_numbers(o, field);
  if (!v) return as_bad_result(v.status());
  for (double d : *v) out.push_back(static_cast<float>(d));
  return Status::Ok();
}

Expected<ErrorInfo> get_error(const msgpack::object& o) {
  if (o.type != msgpack::type::MAP) return bad_result("error must be a map", "error");
  ErrorInfo e;
  for (uint32_t i = 0; i < o.via.map.size; ++i) {
    const auto& kv = o.via.map.ptr[i];
    const std::string k = detail::key_of(kv);
    if (kv.val.type == msgpack::type::NIL) continue;
    if (k == "code" || k == "message" || k == "field") {
      auto s = detail::get_string(kv.val, "error." + k);
      if (!s) return as_bad_result(s.status());
      (k == "code" ? e.code : k == "message" ? e.message : e.field) = *s;
    } else if (k == "retry_after_ms") {
      auto n = detail::get_integer(kv.val, "error.retry_after_ms");
      if (!n) return as_bad_result(n.status());
      e.retry_after_ms = *n;
    }
  }
  if (e.code.empty()) return bad_result("error.code is missing", "error.code");
  return e;
}

Expected<ModelIdentity> get_model(const msgpack::object& o) {
  if (o.type != msgpack::type::MAP) return bad_result("model must be a map", "model");
  ModelIdentity m;
  for (uint32_t i = 0; i < o.via.map.size; ++i) {
    const auto& kv = o.via.map.ptr[i];
    const std::string k = detail::key_of(kv);
    std::string* target = k == "kind"        ? &m.kind
                          : k == "name"      ? &m.name
                          : k == "sha256"    ? &m.sha256
                          : k == "precision" ? &m.precision
                                             : nullptr;
    if (target == nullptr || kv.val.type == msgpack::type::NIL) continue;
    auto s = detail::get_string(kv.val, "model." + k);
    if (!s) return as_bad_result(s.status());
    *target = *s;
  }
  return m;
}

Expected<Timings> get_timings(const msgpack::object& o) {
  if (o.type != msgpack::type::MAP) return bad_result("timings must be a map", "timings");
  Timings t;
  for (uint32_t i = 0; i < o.via.map.size; ++i) {
    const auto& kv = o.via.map.ptr[i];
    const std::string k = detail::key_of(kv);
    double* target = nullptr;
    for (const auto& [name, member] : kTimingFields)
      if (k == name) target = &(t.*member);
    if (target == nullptr) continue;
    auto n = detail::get_number(kv.val, "timings." + k);
    if (!n) return as_bad_result(n.status());
    *target = *n;
  }
  return t;
}

Status check_version(const msgpack::object* v) {
  if (v == nullptr) return Status::Ok();  // results are lenient: old peers may omit it
  auto n = detail::get_integer(*v, "v");
  if (!n) return as_bad_result(n.status());
  if (*n != kVersion) return bad_result("unsupported schema version " + std::to_string(*n), "v");
  return Status::Ok();
}

}  // namespace

std::string encode_result(const Result& r) {
  msgpack::sbuffer buf;
  Packer pk(buf);
  const uint32_t n = 14 + r.error.has_value() + !r.labels.empty() + !r.probs.empty() +
                     !r.logits.empty() + !r.embedding.empty() + r.segment_probs.has_value() +
                     r.segment_embeddings.has_value() + r.saliency.has_value() + !r.meta.empty() +
                     !r.masked_leads.empty();
  pk.pack_map(n);
  pack_key(pk, "v");  // 1
  pk.pack_int(kVersion);
  pack_key(pk, "id");  // 2
  pk.pack(r.id);
  pack_key(pk, "status");  // 3
  pk.pack(r.status);
  if (r.error) {
    pack_key(pk, "error");
    pk.pack_map(3 + r.error->retry_after_ms.has_value());
    pack_key(pk, "code");
    pk.pack(r.error->code);
    pack_key(pk, "message");
    pk.pack(r.error->message);
    pack_key(pk, "field");
    pk.pack(r.error->field);
    if (r.error->retry_after_ms) {
      pack_key(pk, "retry_after_ms");
      pk.pack_int64(*r.error->retry_after_ms);
    }
  }
  if (!r.labels.empty()) {
    pack_key(pk, "labels");
    pack_strings(pk, r.labels);
  }
  if (!r.probs.empty()) {
    pack_key(pk, "probs");
    pack_labelled(pk, r.labels, r.probs);
  }
  if (!r.logits.empty()) {
    pack_key(pk, "logits");
    pack_labelled(pk, r.labels, r.logits);
  }
  if (!r.embedding.empty()) {
    pack_key(pk, "embedding");
    pack_floats(pk, r.embedding);
  }
  if (r.segment_probs) {
    pack_key(pk, "segment_probs");
    detail::pack_typed_array(pk, *r.segment_probs);
  }
  if (r.segment_embeddings) {
    pack_key(pk, "segment_embeddings");
    detail::pack_typed_array(pk, *r.segment_embeddings);
  }
  if (r.saliency) {
    pack_key(pk, "saliency");
    detail::pack_typed_array(pk, *r.saliency);
  }
  pack_key(pk, "n_segments");  // 4
  pk.pack_int64(r.n_segments);
  pack_key(pk, "derived_leads");  // 5
  pack_strings(pk, r.derived_leads);
  pack_key(pk, "ignored_channels");  // 6
  pack_strings(pk, r.ignored_channels);
  if (!r.masked_leads.empty()) {
    pack_key(pk, "masked_leads");
    pack_strings(pk, r.masked_leads);
  }
  pack_key(pk, "model");  // 7
  detail::pack_model(pk, r.model);
  pack_key(pk, "worker_id");  // 8
  pk.pack(r.worker_id);
  pack_key(pk, "attempts");  // 9
  pk.pack_int64(r.attempts);
  pack_key(pk, "cold_start");  // 10
  pk.pack(r.cold_start);
  pack_key(pk, "cached");  // 11
  pk.pack(r.cached);
  pack_key(pk, "batch_segments");  // 12
  pk.pack_int64(r.batch_segments);
  pack_key(pk, "batch_jobs");  // 13
  pk.pack_int64(r.batch_jobs);
  pack_key(pk, "timings");  // 14
  pk.pack_map(static_cast<uint32_t>(std::size(kTimingFields)));
  for (const auto& [k, member] : kTimingFields) {
    pack_key(pk, k);
    detail::pack_f64(pk, r.timings.*member);
  }
  if (!r.meta.empty()) {
    pack_key(pk, "meta");
    detail::pack_raw(pk, r.meta);
  }
  return std::string(buf.data(), buf.size());
}

namespace {

// Reads result key `k` (any key but v, probs and logits) into `r`; unknown keys are ignored.
Status read_result_key(const std::string& k, const msgpack::object& val, Result& r) {
  auto take_string = [&](std::string& out) -> Status {
    auto x = detail::get_string(val, k);
    if (!x) return as_bad_result(x.status());
    out = *x;
    return Status::Ok();
  };
  auto take_strings = [&](std::vector<std::string>& out) -> Status {
    auto x = detail::get_strings(val, k);
    if (!x) return as_bad_result(x.status());
    out = *x;
    return Status::Ok();
  };
  auto take_array = [&](std::optional<TypedArray>& out) -> Status {
    auto x = detail::decode_typed_array(val, k, 0);
    if (!x) return as_bad_result(x.status());
    out = std::move(*x);
    return Status::Ok();
  };
  if (k == "id") return take_string(r.id);
  if (k == "status") return take_string(r.status);
  if (k == "error") {
    ASSIGN_OR_RETURN(r.error, get_error(val));
  } else if (k == "labels") {
    return take_strings(r.labels);
  } else if (k == "embedding") {
    std::vector<std::string> unused;
    return get_float_list(val, k, r.embedding, unused);
  } else if (k == "segment_probs") {
    return take_array(r.segment_probs);
  } else if (k == "segment_embeddings") {
    return take_array(r.segment_embeddings);
  } else if (k == "saliency") {
    return take_array(r.saliency);
  } else if (k == "n_segments" || k == "attempts" || k == "batch_segments" || k == "batch_jobs") {
    auto x = detail::get_integer(val, k);
    if (!x) return as_bad_result(x.status());
    (k == "n_segments"       ? r.n_segments
     : k == "attempts"       ? r.attempts
     : k == "batch_segments" ? r.batch_segments
                             : r.batch_jobs) = *x;
  } else if (k == "derived_leads") {
    return take_strings(r.derived_leads);
  } else if (k == "ignored_channels") {
    return take_strings(r.ignored_channels);
  } else if (k == "masked_leads") {
    return take_strings(r.masked_leads);
  } else if (k == "model") {
    ASSIGN_OR_RETURN(r.model, get_model(val));
  } else if (k == "worker_id") {
    return take_string(r.worker_id);
  } else if (k == "cold_start" || k == "cached") {
    auto x = detail::get_bool(val, k);
    if (!x) return as_bad_result(x.status());
    (k == "cold_start" ? r.cold_start : r.cached) = *x;
  } else if (k == "timings") {
    ASSIGN_OR_RETURN(r.timings, get_timings(val));
  } else if (k == "meta") {
    msgpack::sbuffer buf;
    msgpack::pack(buf, val);
    r.meta.assign(buf.data(), buf.size());
  }
  return Status::Ok();
}

}  // namespace

Expected<Result> decode_result(const std::string& body) {
  auto parsed = detail::parse_map(body);
  if (!parsed) return as_bad_result(parsed.status());
  const msgpack::object& root = parsed->get();
  const msgpack::object* v = nullptr;
  const msgpack::object* probs = nullptr;
  const msgpack::object* logits = nullptr;
  Result r;
  bool saw_status = false;
  for (uint32_t i = 0; i < root.via.map.size; ++i) {
    const auto& kv = root.via.map.ptr[i];
    const std::string k = detail::key_of(kv);
    if (k == "v") {
      v = &kv.val;
    } else if (k == "probs") {
      probs = &kv.val;
    } else if (k == "logits") {
      logits = &kv.val;
    } else if (kv.val.type != msgpack::type::NIL) {
      saw_status = saw_status || k == "status";
      RETURN_IF_ERROR(read_result_key(k, kv.val, r));
    }
  }
  RETURN_IF_ERROR(check_version(v));
  if (!saw_status) return bad_result("missing status", "status");
  if (r.status != "ok" && r.status != "error") {
    return bad_result("status must be \"ok\" or \"error\", got \"" + r.status + "\"", "status");
  }
  if (r.status == "error" && !r.error) return bad_result("error result without error", "error");
  // probs/logits after labels so that an explicit labels list sets the order.
  if (probs != nullptr && probs->type != msgpack::type::NIL) {
    RETURN_IF_ERROR(get_float_list(*probs, "probs", r.probs, r.labels));
  }
  if (logits != nullptr && logits->type != msgpack::type::NIL) {
    std::vector<std::string> names;
    RETURN_IF_ERROR(get_float_list(*logits, "logits", r.logits, names));
    if (r.labels.empty()) r.labels = std::move(names);
  }
  return r;
}

std::string encode_progress(const Progress& p) {
  msgpack::sbuffer buf;
  Packer pk(buf);
  pk.pack_map(3 + (p.position >= 0) + !p.worker_id.empty());
  pack_key(pk, "v");
  pk.pack_int(kVersion);
  pack_key(pk, "id");
  pk.pack(p.id);
  pack_key(pk, "event");
  pk.pack(p.event);
  if (p.position >= 0) {
    pack_key(pk, "position");
    pk.pack_int64(p.position);
  }
  if (!p.worker_id.empty()) {
    pack_key(pk, "worker_id");
    pk.pack(p.worker_id);
  }
  return std::string(buf.data(), buf.size());
}

Expected<Progress> decode_progress(const std::string& body) {
  auto parsed = detail::parse_map(body);
  if (!parsed) return as_bad_result(parsed.status());
  const msgpack::object& root = parsed->get();
  Progress p;
  const msgpack::object* v = nullptr;
  for (uint32_t i = 0; i < root.via.map.size; ++i) {
    const auto& kv = root.via.map.ptr[i];
    const std::string k = detail::key_of(kv);
    if (kv.val.type == msgpack::type::NIL) continue;
    if (k == "v") {
      v = &kv.val;
    } else if (k == "id" || k == "event" || k == "worker_id") {
      auto s = detail::get_string(kv.val, k);
      if (!s) return as_bad_result(s.status());
      (k == "id" ? p.id : k == "event" ? p.event : p.worker_id) = *s;
    } else if (k == "position") {
      auto n = detail::get_integer(kv.val, k);
      if (!n) return as_bad_result(n.status());
      p.position = *n;
    }
  }
  RETURN_IF_ERROR(check_version(v));
  if (p.event.empty()) return bad_result("progress without event", "event");
  return p;
}

}  // namespace ecgq::schema
