// Long file: one codec per body (job, result, progress), each with its validation next to its
// encoding; split it by body when it grows further.
// msgpack encoding and validation of job, result and progress bodies (schema version 1).
// Field names on the wire are the struct field names; unknown keys are ignored so that newer
// producers can talk to older workers, and a key that appears twice takes its later value (the
// broker appends `dispatch`/`id` to bodies it does not re-encode).
#include "protocol/schema.hpp"

#include <cmath>
#include <cstring>
#include <limits>
#include <string>

#include "common/text.hpp"
#include "protocol/msgpack_bounds.hpp"
#include "protocol/schema_msgpack.hpp"

namespace ecgq::schema {

using detail::Packer;

size_t dtype_size(const std::string& dtype) {
  if (dtype == "f32") return 4;
  if (dtype == "f64") return 8;
  if (dtype == "i16") return 2;
  return 0;
}

namespace detail {

msgpack::unpack_limit limits() {
  // array, map, str, bin, ext, depth: arrays hold shapes, lead names and per-label values
  // (embeddings included), so 64Ki elements is ample and bounds the up-front allocation.
  return msgpack::unpack_limit(1u << 16, 1u << 12, 1u << 20, static_cast<std::size_t>(kMaxBinBytes),
                               1u << 20, 16);
}

const char* type_name(const msgpack::object& o) {
  switch (o.type) {
    case msgpack::type::NIL:
      return "nil";
    case msgpack::type::BOOLEAN:
      return "a boolean";
    case msgpack::type::POSITIVE_INTEGER:
    case msgpack::type::NEGATIVE_INTEGER:
      return "an integer";
    case msgpack::type::FLOAT32:
    case msgpack::type::FLOAT64:
      return "a float";
    case msgpack::type::STR:
      return "a string";
    case msgpack::type::BIN:
      return "bin";
    case msgpack::type::ARRAY:
      return "an array";
    case msgpack::type::MAP:
      return "a map";
    case msgpack::type::EXT:
      return "an ext";
  }
  return "unknown";
}

bool is_number(const msgpack::object& o) {
  return is_integer(o) || o.type == msgpack::type::FLOAT32 || o.type == msgpack::type::FLOAT64;
}

bool is_integer(const msgpack::object& o) {
  return o.type == msgpack::type::POSITIVE_INTEGER || o.type == msgpack::type::NEGATIVE_INTEGER;
}

std::string key_of(const msgpack::object_kv& kv) {
  return kv.key.type == msgpack::type::STR ? std::string(kv.key.via.str.ptr, kv.key.via.str.size)
                                           : std::string();
}

}  // namespace detail

namespace {

using detail::is_integer;
using detail::is_number;
using detail::key_of;
using detail::type_name;

Status bad_request(const std::string& message, const std::string& field) {
  return Status(ErrorCode::BadRequest, message, field);
}

Status wrong_type(const std::string& field, const std::string& expected,
                  const msgpack::object& got) {
  return bad_request(field + " must be " + expected + ", got " + type_name(got), field);
}

double as_double(const msgpack::object& o) {
  switch (o.type) {
    case msgpack::type::POSITIVE_INTEGER:
      return static_cast<double>(o.via.u64);
    case msgpack::type::NEGATIVE_INTEGER:
      return static_cast<double>(o.via.i64);
    default:
      return o.via.f64;
  }
}

// Integers beyond int64 are clamped; every integer field of the schema is far below that.
int64_t as_int64(const msgpack::object& o) {
  if (o.type == msgpack::type::POSITIVE_INTEGER) {
    return o.via.u64 > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())
               ? std::numeric_limits<int64_t>::max()
               : static_cast<int64_t>(o.via.u64);
  }
  return o.via.i64;
}

std::string as_string(const msgpack::object& o) {
  return std::string(o.via.str.ptr, o.via.str.size);
}

// Raw msgpack of an object, used for `meta` which travels opaque.
std::string repack(const msgpack::object& o) {
  msgpack::sbuffer buf;
  msgpack::pack(buf, o);
  return std::string(buf.data(), buf.size());
}

Status check_version(const msgpack::object* v) {
  if (v == nullptr) return bad_request("missing schema version v (expected 1)", "v");
  if (!is_integer(*v)) return wrong_type("v", "the integer 1", *v);
  if (as_int64(*v) != kVersion) {
    return bad_request(
        "unsupported schema version " + std::to_string(as_int64(*v)) + " (this build speaks 1)",
        "v");
  }
  return Status::Ok();
}

Expected<DispatchInfo> get_dispatch(const msgpack::object& o) {
  if (o.type != msgpack::type::MAP) return wrong_type("dispatch", "a map", o);
  DispatchInfo d;
  for (uint32_t i = 0; i < o.via.map.size; ++i) {
    const auto& kv = o.via.map.ptr[i];
    const std::string k = key_of(kv);
    if (k == "attempt") {
      ASSIGN_OR_RETURN(auto a, detail::get_integer_in(kv.val, "dispatch.attempt", 0, 1 << 20));
      d.attempt = a;
    } else if (k == "queued_ms") {
      ASSIGN_OR_RETURN(auto q, detail::get_number(kv.val, "dispatch.queued_ms"));
      d.queued_ms = q;
    }
  }
  return d;
}

}  // namespace

namespace detail {

Expected<std::string> get_string(const msgpack::object& o, const std::string& field) {
  if (o.type != msgpack::type::STR) return wrong_type(field, "a string", o);
  return as_string(o);
}

Expected<double> get_number(const msgpack::object& o, const std::string& field) {
  if (!is_number(o)) return wrong_type(field, "a number", o);
  return as_double(o);
}

Expected<int64_t> get_integer(const msgpack::object& o, const std::string& field) {
  if (!is_integer(o)) return wrong_type(field, "an integer", o);
  if (o.type == msgpack::type::POSITIVE_INTEGER &&
      o.via.u64 > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
    return bad_request(
        field + " must be an integer that fits in 64 signed bits, got " + std::to_string(o.via.u64),
        field);
  }
  return as_int64(o);
}

Expected<bool> get_bool(const msgpack::object& o, const std::string& field) {
  if (o.type != msgpack::type::BOOLEAN) return wrong_type(field, "a boolean", o);
  return o.via.boolean;
}

Expected<std::vector<std::string>> get_strings(const msgpack::object& o, const std::string& field) {
  if (o.type != msgpack::type::ARRAY) return wrong_type(field, "an array of strings", o);
  std::vector<std::string> out;
  out.reserve(o.via.array.size);
  for (uint32_t i = 0; i < o.via.array.size; ++i) {
    const auto& e = o.via.array.ptr[i];
    if (e.type != msgpack::type::STR) {
      return bad_request(
          field + "[" + std::to_string(i) + "] must be a string, got " + type_name(e), field);
    }
    out.push_back(as_string(e));
  }
  return out;
}

Expected<std::vector<double>> get_numbers(const msgpack::object& o, const std::string& field) {
  if (is_number(o)) return std::vector<double>{as_double(o)};
  if (o.type != msgpack::type::ARRAY) {
    return wrong_type(field, "a number or an array of numbers", o);
  }
  std::vector<double> out;
  out.reserve(o.via.array.size);
  for (uint32_t i = 0; i < o.via.array.size; ++i) {
    const auto& e = o.via.array.ptr[i];
    if (!is_number(e)) {
      return bad_request(
          field + "[" + std::to_string(i) + "] must be a number, got " + type_name(e), field);
    }
    out.push_back(as_double(e));
  }
  return out;
}

Expected<msgpack::object_handle> parse_map(std::string_view body) {
  // The scan first: msgpack-c allocates for every declared element before it reads any.
  RETURN_IF_ERROR(check_msgpack_bounds(body));
  msgpack::object_handle oh;
  try {
    std::size_t offset = 0;
    auto reference_all = [](msgpack::type::object_type, std::size_t, void*) { return true; };
    oh = msgpack::unpack(body.data(), body.size(), offset, reference_all, nullptr, limits());
    if (offset != body.size()) {
      return bad_request("body has " + std::to_string(body.size() - offset) +
                             " trailing bytes after the msgpack object",
                         "");
    }
  } catch (const msgpack::insufficient_bytes&) {
    return bad_request("body is truncated msgpack (a length runs past the end)", "");
  } catch (const msgpack::size_overflow& e) {
    return bad_request(std::string("body exceeds msgpack size limits: ") + e.what(), "");
  } catch (const std::exception& e) {
    return bad_request(std::string("body is not valid msgpack: ") + e.what(), "");
  }
  if (oh.get().type != msgpack::type::MAP) {
    return bad_request(std::string("body must be a msgpack map, got ") + type_name(oh.get()), "");
  }
  return Expected<msgpack::object_handle>(std::move(oh));
}

void pack_key(Packer& pk, const char* key) {
  const size_t n = std::char_traits<char>::length(key);
  pk.pack_str(static_cast<uint32_t>(n));
  pk.pack_str_body(key, static_cast<uint32_t>(n));
}

// pack_bin_body appends bytes verbatim, which is the only raw-append the packer exposes.
void pack_f64(Packer& pk, double value) {
  uint64_t bits = 0;
  std::memcpy(&bits, &value, sizeof bits);
  char buf[9];
  buf[0] = static_cast<char>(0xcb);
  for (int i = 0; i < 8; ++i) buf[1 + i] = static_cast<char>((bits >> (56 - 8 * i)) & 0xff);
  pk.pack_bin_body(buf, sizeof buf);
}

void pack_f32(Packer& pk, float value) {
  uint32_t bits = 0;
  std::memcpy(&bits, &value, sizeof bits);
  char buf[5];
  buf[0] = static_cast<char>(0xca);
  for (int i = 0; i < 4; ++i) buf[1 + i] = static_cast<char>((bits >> (24 - 8 * i)) & 0xff);
  pk.pack_bin_body(buf, sizeof buf);
}

void pack_raw(Packer& pk, const std::string& msgpack_bytes) {
  pk.pack_bin_body(msgpack_bytes.data(), static_cast<uint32_t>(msgpack_bytes.size()));
}

void pack_typed_array(Packer& pk, const TypedArray& a) {
  pk.pack_map(3);
  pack_key(pk, "dtype");
  pk.pack(a.dtype);
  pack_key(pk, "shape");
  pk.pack_array(static_cast<uint32_t>(a.shape.size()));
  for (int64_t d : a.shape) pk.pack_int64(d);
  pack_key(pk, "data");
  pk.pack_bin(static_cast<uint32_t>(a.data.size()));
  pk.pack_bin_body(a.data.data(), static_cast<uint32_t>(a.data.size()));
}

void pack_dispatch(Packer& pk, const DispatchInfo& d) {
  pk.pack_map(2);
  pack_key(pk, "attempt");
  pk.pack_int64(d.attempt);
  pack_key(pk, "queued_ms");
  pack_f64(pk, d.queued_ms);
}

void pack_model(Packer& pk, const ModelIdentity& m) {
  pk.pack_map(4);
  pack_key(pk, "kind");
  pk.pack(m.kind);
  pack_key(pk, "name");
  pk.pack(m.name);
  pack_key(pk, "sha256");
  pk.pack(m.sha256);
  pack_key(pk, "precision");
  pk.pack(m.precision);
}

Expected<TypedArray> decode_typed_array(const msgpack::object& o, const std::string& field,
                                        size_t rank, bool copy_data, std::string_view* data_view) {
  if (o.type != msgpack::type::MAP) {
    return wrong_type(field, "a map {dtype, shape, data}", o);
  }
  const msgpack::object* dtype = nullptr;
  const msgpack::object* shape = nullptr;
  const msgpack::object* data = nullptr;
  for (uint32_t i = 0; i < o.via.map.size; ++i) {
    const auto& kv = o.via.map.ptr[i];
    const std::string k = key_of(kv);
    if (k == "dtype")
      dtype = &kv.val;
    else if (k == "shape")
      shape = &kv.val;
    else if (k == "data")
      data = &kv.val;
  }
  TypedArray a;
  if (dtype == nullptr) return bad_request("missing " + field + ".dtype", field + ".dtype");
  if (dtype->type != msgpack::type::STR) return wrong_type(field + ".dtype", "a string", *dtype);
  a.dtype = as_string(*dtype);
  const size_t itemsize = dtype_size(a.dtype);
  if (itemsize == 0) {
    return Status(ErrorCode::UnsupportedDtype,
                  field + ".dtype \"" + a.dtype + "\" is not supported (expected f32, f64 or i16)",
                  field + ".dtype");
  }
  if (shape == nullptr) return bad_request("missing " + field + ".shape", field + ".shape");
  if (shape->type != msgpack::type::ARRAY) {
    return wrong_type(field + ".shape", "an array of integers", *shape);
  }
  if (rank != 0 && shape->via.array.size != rank) {
    return Status(ErrorCode::BadShape,
                  field + ".shape must have " + std::to_string(rank) + " dimensions, got " +
                      std::to_string(shape->via.array.size),
                  field + ".shape");
  }
  // Overflow-safe element count: a hostile shape must not wrap around to match a small bin.
  const uint64_t max_bytes = kMaxBinBytes;
  uint64_t elements = 1;
  for (uint32_t i = 0; i < shape->via.array.size; ++i) {
    const auto& e = shape->via.array.ptr[i];
    if (!is_integer(e)) return wrong_type(field + ".shape", "an array of integers", e);
    const int64_t n = as_int64(e);
    if (n <= 0) {
      return Status(
          "bad_shape",
          field + ".shape[" + std::to_string(i) + "] must be > 0, got " + std::to_string(n),
          field + ".shape");
    }
    if (static_cast<uint64_t>(n) > max_bytes / itemsize / elements) {
      return Status(
          "bad_shape",
          field + ".shape claims more than " + std::to_string(max_bytes) + " bytes of data",
          field + ".shape");
    }
    elements *= static_cast<uint64_t>(n);
    a.shape.push_back(n);
  }
  if (data == nullptr) return bad_request("missing " + field + ".data", field + ".data");
  if (data->type != msgpack::type::BIN) return wrong_type(field + ".data", "bin", *data);
  const uint64_t expected = elements * itemsize;
  if (data->via.bin.size != expected) {
    return Status(ErrorCode::BadShape,
                  field + ".data has " + std::to_string(data->via.bin.size) +
                      " bytes but shape x " + a.dtype + " needs " + std::to_string(expected),
                  field + ".data");
  }
  if (copy_data) a.data.assign(data->via.bin.ptr, data->via.bin.size);
  if (data_view != nullptr) *data_view = std::string_view(data->via.bin.ptr, data->via.bin.size);
  return a;
}

}  // namespace detail

// ---------------------------------------------------------------------------------------------
// Job

std::string encode_job(const Job& job) {
  msgpack::sbuffer buf;
  Packer pk(buf);
  const uint32_t n = 4 + (!job.id.empty()) + (!job.gain.empty()) + (!job.baseline.empty()) +
                     (!job.units.empty()) + (!job.outputs.empty()) + job.deadline_ms.has_value() +
                     (!job.model_sha256.empty()) + (!job.missing_leads.empty()) +
                     job.wait_for_worker_ms.has_value() + (!job.meta.empty()) +
                     job.dispatch.has_value();
  pk.pack_map(n);
  detail::pack_key(pk, "v");
  pk.pack_int(kVersion);
  if (!job.id.empty()) {
    detail::pack_key(pk, "id");
    pk.pack(job.id);
  }
  detail::pack_key(pk, "ecg");
  detail::pack_typed_array(pk, job.ecg);
  detail::pack_key(pk, "fs");
  detail::pack_f64(pk, job.fs);
  detail::pack_key(pk, "leads");
  pk.pack(job.leads);
  if (!job.gain.empty()) {
    detail::pack_key(pk, "gain");
    pk.pack(job.gain);
  }
  if (!job.baseline.empty()) {
    detail::pack_key(pk, "baseline");
    pk.pack(job.baseline);
  }
  if (!job.units.empty()) {
    detail::pack_key(pk, "units");
    pk.pack(job.units);
  }
  if (!job.outputs.empty()) {
    detail::pack_key(pk, "outputs");
    pk.pack(job.outputs);
  }
  if (job.deadline_ms) {
    detail::pack_key(pk, "deadline_ms");
    pk.pack_int64(*job.deadline_ms);
  }
  if (!job.model_sha256.empty()) {
    detail::pack_key(pk, "model_sha256");
    pk.pack(job.model_sha256);
  }
  if (!job.missing_leads.empty()) {
    detail::pack_key(pk, "missing_leads");
    pk.pack(job.missing_leads);
  }
  if (job.wait_for_worker_ms) {
    detail::pack_key(pk, "wait_for_worker_ms");
    pk.pack_int64(*job.wait_for_worker_ms);
  }
  if (!job.meta.empty()) {
    detail::pack_key(pk, "meta");
    detail::pack_raw(pk, job.meta);
  }
  if (job.dispatch) {
    detail::pack_key(pk, "dispatch");
    detail::pack_dispatch(pk, *job.dispatch);
  }
  return std::string(buf.data(), buf.size());
}

namespace {

// The last occurrence of each known job key (later keys win), nullptr when absent: fields are
// validated in a fixed order so that the reported error does not depend on key order.
struct JobFields {
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
  const msgpack::object* model_sha256 = nullptr;
  const msgpack::object* wait_for_worker = nullptr;
  const msgpack::object* missing_leads = nullptr;
  const msgpack::object* meta = nullptr;
  const msgpack::object* dispatch = nullptr;
};

JobFields job_fields(const msgpack::object& root) {
  static const std::pair<const char*, const msgpack::object * JobFields::*> kKeys[] = {
      {"v", &JobFields::v},
      {"id", &JobFields::id},
      {"ecg", &JobFields::ecg},
      {"fs", &JobFields::fs},
      {"leads", &JobFields::leads},
      {"gain", &JobFields::gain},
      {"baseline", &JobFields::baseline},
      {"units", &JobFields::units},
      {"outputs", &JobFields::outputs},
      {"deadline_ms", &JobFields::deadline},
      {"model_sha256", &JobFields::model_sha256},
      {"wait_for_worker_ms", &JobFields::wait_for_worker},
      {"missing_leads", &JobFields::missing_leads},
      {"meta", &JobFields::meta},
      {"dispatch", &JobFields::dispatch}};
  JobFields f;
  for (uint32_t i = 0; i < root.via.map.size; ++i) {
    const auto& kv = root.via.map.ptr[i];
    const std::string k = key_of(kv);
    for (const auto& [name, field] : kKeys)
      if (k == name) f.*field = &kv.val;
  }
  return f;
}

// A time budget in ms: an integer from 0 to 30 days.
Expected<int64_t> budget_ms(const msgpack::object& o, const char* field) {
  ASSIGN_OR_RETURN(const int64_t ms, detail::get_integer(o, field));
  if (ms < 0 || ms > kMaxJobBudgetMs)
    return bad_request(std::string(field) + " must be from 0 to " +
                           std::to_string(kMaxJobBudgetMs) + " (30 days), got " +
                           std::to_string(ms),
                       field);
  return ms;
}

// nil reads as absent for optional keys (Python's None).
bool present(const msgpack::object* o) {
  return o != nullptr && o->type != msgpack::type::NIL;
}

// ecg, fs and leads: the samples and what they need to be read (`samples`, when given, views the
// sample bytes inside the body).
Status decode_samples(const JobFields& f, bool copy_samples, std::string_view* samples, Job& job) {
  if (f.ecg == nullptr)
    return bad_request("missing ecg (a map {dtype, shape: [leads, samples], data})", "ecg");
  ASSIGN_OR_RETURN(job.ecg, detail::decode_typed_array(*f.ecg, "ecg", 2, copy_samples, samples));
  const int64_t n_leads = job.ecg.shape[0];

  if (f.fs == nullptr) return bad_request("missing fs (sample rate in Hz)", "fs");
  ASSIGN_OR_RETURN(const double fs, detail::get_number(*f.fs, "fs"));
  if (!std::isfinite(fs) || fs <= 0) {
    return bad_request("fs must be a finite number > 0, got " + std::to_string(fs), "fs");
  }
  job.fs = fs;

  if (f.leads == nullptr) return bad_request("missing leads (one name per row of ecg)", "leads");
  ASSIGN_OR_RETURN(job.leads, detail::get_strings(*f.leads, "leads"));
  if (static_cast<int64_t>(job.leads.size()) != n_leads) {
    return bad_request("leads has " + std::to_string(job.leads.size()) +
                           " names but ecg.shape[0] is " + std::to_string(n_leads),
                       "leads");
  }
  return Status::Ok();
}

// gain and baseline: none, one for all leads or one per lead, finite (gains non-zero).
Status decode_per_lead(const JobFields& f, Job& job) {
  const int64_t n_leads = job.ecg.shape[0];
  struct PerLead {
    const msgpack::object* o;
    const char* name;
    std::vector<double>* out;
  };
  for (const PerLead& p :
       {PerLead{f.gain, "gain", &job.gain}, PerLead{f.baseline, "baseline", &job.baseline}}) {
    if (!present(p.o)) continue;
    ASSIGN_OR_RETURN(auto vals, detail::get_numbers(*p.o, p.name));
    const size_t k = vals.size();
    if (k != 0 && k != 1 && static_cast<int64_t>(k) != n_leads) {
      return bad_request(std::string(p.name) + " has " + std::to_string(k) +
                             " values; expected 0, 1 or one per lead (" + std::to_string(n_leads) +
                             ")",
                         p.name);
    }
    for (double d : vals) {
      if (!std::isfinite(d) || (p.out == &job.gain && d == 0)) {
        return bad_request(std::string(p.name) + " values must be finite" +
                               (p.out == &job.gain ? " and non-zero" : ""),
                           p.name);
      }
    }
    *p.out = std::move(vals);
  }
  return Status::Ok();
}

// model_sha256: 64 lowercase hex digits, the sha256 a worker reports for its model.
Status decode_model_pin(const JobFields& f, Job& job) {
  if (!present(f.model_sha256)) return Status::Ok();
  ASSIGN_OR_RETURN(job.model_sha256, detail::get_string(*f.model_sha256, "model_sha256"));
  const bool hex = job.model_sha256.find_first_not_of("0123456789abcdef") == std::string::npos;
  if (job.model_sha256.size() != 64 || !hex)
    return bad_request("model_sha256 must be 64 lowercase hex digits (a model's sha256), got " +
                           std::to_string(job.model_sha256.size()) + " characters",
                       "model_sha256");
  return Status::Ok();
}

// missing_leads: "refuse" or "zero".
Status decode_missing_leads(const JobFields& f, Job& job) {
  if (!present(f.missing_leads)) return Status::Ok();
  ASSIGN_OR_RETURN(job.missing_leads, detail::get_string(*f.missing_leads, "missing_leads"));
  for (const auto& p : kMissingLeadsPolicies)
    if (job.missing_leads == p) return Status::Ok();
  return bad_request(
      "missing_leads must be refuse or zero, got \"" + loggable(job.missing_leads, 40) + "\"",
      "missing_leads");
}

// units, outputs, deadline_ms, model_sha256, missing_leads, meta and dispatch.
Status decode_options(const JobFields& f, Job& job) {
  if (present(f.units)) {
    ASSIGN_OR_RETURN(job.units, detail::get_string(*f.units, "units"));
  }
  if (present(f.outputs)) {
    ASSIGN_OR_RETURN(auto o, detail::get_strings(*f.outputs, "outputs"));
    for (const auto& name : o) {
      bool known = false;
      for (const auto& k : kOutputNames) known = known || k == name;
      if (!known) {
        return bad_request("unknown output \"" + name +
                               "\" (expected probs, logits, embedding, segments or saliency)",
                           "outputs");
      }
    }
    job.outputs = std::move(o);
  }
  if (present(f.deadline)) {
    ASSIGN_OR_RETURN(const int64_t d, budget_ms(*f.deadline, "deadline_ms"));
    if (d > 0) job.deadline_ms = d;  // 0 means no deadline
  }
  if (present(f.wait_for_worker)) {
    ASSIGN_OR_RETURN(job.wait_for_worker_ms, budget_ms(*f.wait_for_worker, "wait_for_worker_ms"));
  }
  RETURN_IF_ERROR(decode_model_pin(f, job));
  RETURN_IF_ERROR(decode_missing_leads(f, job));
  if (present(f.meta)) job.meta = repack(*f.meta);
  if (present(f.dispatch)) {
    ASSIGN_OR_RETURN(job.dispatch, get_dispatch(*f.dispatch));
  }
  return Status::Ok();
}

}  // namespace

Expected<Job> detail::decode_job_body(std::string_view body, bool copy_samples,
                                      std::string_view* samples) {
  ASSIGN_OR_RETURN(auto parsed, detail::parse_map(body));
  const JobFields f = job_fields(parsed.get());
  RETURN_IF_ERROR(check_version(f.v));
  Job job;
  if (present(f.id)) {
    ASSIGN_OR_RETURN(job.id, detail::get_string(*f.id, "id"));
    if (job.id.size() > detail::kMaxJobIdBytes) {
      return bad_request("id is " + std::to_string(job.id.size()) + " bytes; at most " +
                             std::to_string(detail::kMaxJobIdBytes) + " are allowed",
                         "id");
    }
    // Ids are printed in every log line of their job: one line, valid UTF-8.
    if (!is_plain_text(job.id))
      return bad_request("id must be printable UTF-8 (no control characters)", "id");
  }
  RETURN_IF_ERROR(decode_samples(f, copy_samples, samples, job));
  RETURN_IF_ERROR(decode_per_lead(f, job));
  RETURN_IF_ERROR(decode_options(f, job));
  return job;
}

Expected<Job> decode_job(const std::string& body) {
  return detail::decode_job_body(body, /*copy_samples=*/true);
}

}  // namespace ecgq::schema
