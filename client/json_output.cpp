#include "client/json_output.hpp"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <msgpack.hpp>

#include "common/text.hpp"

namespace ecgq::client {

namespace {

// float32 values printed with the digits they carry ("0.1", not "0.10000000149011612").
double tidy(float f) {
  if (!std::isfinite(f)) return static_cast<double>(f);
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.7g", static_cast<double>(f));
  return std::strtod(buf, nullptr);
}

Json float_array(const std::vector<float>& values) {
  Json a = Json::array();
  for (float f : values) a.push_back(tidy(f));
  return a;
}

Json labelled(const std::vector<std::string>& labels, const std::vector<float>& values) {
  if (labels.size() != values.size()) return float_array(values);
  Json m = Json::object();
  for (size_t i = 0; i < values.size(); ++i) m[labels[i]] = tidy(values[i]);
  return m;
}

// A [rows, cols] f32 typed array as nested arrays.
Json matrix(const schema::TypedArray& a) {
  Json rows = Json::array();
  if (a.dtype != "f32" || a.shape.size() != 2) return rows;
  const auto* data = reinterpret_cast<const float*>(a.data.data());
  for (int64_t r = 0; r < a.shape[0]; ++r) {
    rows.push_back(
        float_array(std::vector<float>(data + r * a.shape[1], data + (r + 1) * a.shape[1])));
  }
  return rows;
}

Json error_json(const schema::ErrorInfo& e) {
  Json j = {{"code", e.code}, {"message", e.message}, {"field", e.field}};
  if (e.retry_after_ms) j["retry_after_ms"] = *e.retry_after_ms;
  return j;
}

Json to_json(const msgpack::object& o) {
  switch (o.type) {
    case msgpack::type::NIL:
      return nullptr;
    case msgpack::type::BOOLEAN:
      return o.via.boolean;
    case msgpack::type::POSITIVE_INTEGER:
      return o.via.u64;
    case msgpack::type::NEGATIVE_INTEGER:
      return o.via.i64;
    case msgpack::type::FLOAT32:
    case msgpack::type::FLOAT64:
      return o.via.f64;
    case msgpack::type::STR:
      return std::string(o.via.str.ptr, o.via.str.size);
    case msgpack::type::BIN:
      return "<" + std::to_string(o.via.bin.size) + " bytes>";
    case msgpack::type::EXT:
      return "<ext>";
    case msgpack::type::ARRAY: {
      Json a = Json::array();
      for (uint32_t i = 0; i < o.via.array.size; ++i) a.push_back(to_json(o.via.array.ptr[i]));
      return a;
    }
    case msgpack::type::MAP: {
      Json m = Json::object();
      for (uint32_t i = 0; i < o.via.map.size; ++i) {
        const auto& kv = o.via.map.ptr[i];
        const Json key = to_json(kv.key);
        m[key.is_string() ? key.get<std::string>() : key.dump()] = to_json(kv.val);
      }
      return m;
    }
  }
  return nullptr;
}

// Milliseconds to the microsecond: no float noise (0.202112, not 0.20211200000000001).
double to_microsecond(double ms) {
  return std::round(ms * 1000.0) / 1000.0;
}

Json timings_json(const schema::Timings& t) {
  Json timings = Json::object();
  for (const auto& [k, member] : schema::kTimingFields) timings[k] = to_microsecond(t.*member);
  return timings;
}

// The fields of a failed job that say something: the worker and model when one ran it, the
// segments when the record was cut, the timings when any were measured.
Json error_row(Json j, const schema::Result& r) {
  j["attempts"] = r.attempts;
  if (!r.worker_id.empty()) j["worker"] = r.worker_id;
  if (!r.model.sha256.empty() || !r.model.name.empty())
    j["model"] = {{"kind", r.model.kind},
                  {"name", r.model.name},
                  {"sha256", r.model.sha256},
                  {"precision", r.model.precision}};
  if (r.n_segments > 0) j["n_segments"] = r.n_segments;
  if (r.cold_start) j["cold_start"] = true;
  bool timed = false;
  for (const auto& [k, member] : schema::kTimingFields) timed = timed || r.timings.*member > 0;
  if (timed) j["timings"] = timings_json(r.timings);
  return j;
}

}  // namespace

Json result_json(const std::string& path, const schema::Result& r,
                 const std::vector<std::string>& outputs) {
  auto wanted = [&](const char* name) {
    if (outputs.empty()) return std::string(name) == "probs";
    for (const auto& o : outputs)
      if (o == name) return true;
    return false;
  };
  Json j;
  j["path"] = path;
  j["id"] = r.id;
  j["status"] = r.status;
  if (r.error) j["error"] = error_json(*r.error);
  // An error row carries what is known of the job, not a result's empty fields.
  if (r.status != "ok") return error_row(std::move(j), r);
  j["cold_start"] = r.cold_start;
  j["cached"] = r.cached;
  j["batch_segments"] = r.batch_segments;
  j["batch_jobs"] = r.batch_jobs;
  j["attempts"] = r.attempts;
  j["worker"] = r.worker_id;
  j["model"] = {{"kind", r.model.kind},
                {"name", r.model.name},
                {"sha256", r.model.sha256},
                {"precision", r.model.precision}};
  j["n_segments"] = r.n_segments;
  j["timings"] = timings_json(r.timings);
  if (!r.probs.empty() && wanted("probs")) j["probs"] = labelled(r.labels, r.probs);
  if (!r.logits.empty() && wanted("logits")) j["logits"] = labelled(r.labels, r.logits);
  if (!r.embedding.empty() && wanted("embedding")) j["embedding"] = float_array(r.embedding);
  if (r.segment_probs && wanted("segments")) j["segment_probs"] = matrix(*r.segment_probs);
  if (r.segment_embeddings && wanted("segments")) {
    j["segment_embeddings"] = matrix(*r.segment_embeddings);
  }
  if (r.saliency && wanted("saliency")) j["saliency"] = matrix(*r.saliency);
  j["derived_leads"] = r.derived_leads;
  j["ignored_channels"] = r.ignored_channels;
  if (!r.masked_leads.empty()) j["masked_leads"] = r.masked_leads;
  return j;
}

Expected<Json> msgpack_json(const std::string& body) {
  try {
    msgpack::object_handle oh = msgpack::unpack(body.data(), body.size());
    return to_json(oh.get());
  } catch (const std::exception& e) {
    return Status(ErrorCode::BadResult, std::string("not msgpack: ") + e.what());
  }
}

namespace {

// A copy of `json` with invalid UTF-8 escaped in every string and key.
Json utf8_safe(const Json& json) {
  if (json.is_string()) return escape_invalid_utf8(json.get_ref<const std::string&>());
  if (json.is_array()) {
    Json out = Json::array();
    for (const auto& v : json) out.push_back(utf8_safe(v));
    return out;
  }
  if (json.is_object()) {
    Json out = Json::object();
    for (const auto& [k, v] : json.items()) out[escape_invalid_utf8(k)] = utf8_safe(v);
    return out;
  }
  return json;
}

}  // namespace

std::string json_line(const Json& json) {
  try {
    return json.dump();
  } catch (const nlohmann::json::type_error&) {
    // Rare (a non-UTF-8 path or message): pay for the copy only then.
    return utf8_safe(json).dump();
  }
}

}  // namespace ecgq::client
