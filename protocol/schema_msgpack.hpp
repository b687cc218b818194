// Internal msgpack helpers shared by the schema encoders/decoders (common/schema*.cpp).
// Not part of the public contract: include common/schema.hpp for that.
#pragma once

#include <cstdint>
#include <msgpack.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.hpp"
#include "protocol/schema.hpp"

namespace ecgq::schema::detail {

// The packer every encoder uses.
using Packer = msgpack::packer<msgpack::sbuffer>;

// Largest typed array payload a body may claim (bounds hostile shapes before any allocation).
inline constexpr uint64_t kMaxBinBytes = uint64_t{1} << 30;

// Longest job id a body may carry (ids appear in every log line and result).
inline constexpr size_t kMaxJobIdBytes = 128;
// Largest deadline_ms a job may ask for: 30 days.
inline constexpr int64_t kMaxDeadlineMs = int64_t{30} * 24 * 3600 * 1000;

// Unpack limits that keep a hostile header (a 4G-element array) from allocating gigabytes.
msgpack::unpack_limit limits();

// Parses a body that must be exactly one msgpack map; the handle references `body`, which must
// outlive it. Errors are bad_request with field "".
Expected<msgpack::object_handle> parse_map(std::string_view body);

// A printable name of a msgpack type, for error messages ("a string", "an array").
const char* type_name(const msgpack::object& o);
// The key of a map entry, or "" when it is not a string.
std::string key_of(const msgpack::object_kv& kv);
// True for msgpack integer and float types.
bool is_number(const msgpack::object& o);
// True for msgpack integer types.
bool is_integer(const msgpack::object& o);

// Typed readers: a wrong type is bad_request naming `field`.
Expected<std::string> get_string(const msgpack::object& o, const std::string& field);
Expected<double> get_number(const msgpack::object& o, const std::string& field);
Expected<int64_t> get_integer(const msgpack::object& o, const std::string& field);
// An integer in [lo, hi]; outside it bad_request naming `field`, the range and `unit`.
Expected<int64_t> get_integer_in(const msgpack::object& o, const std::string& field, int64_t lo,
                                 int64_t hi, const std::string& unit = "");
Expected<bool> get_bool(const msgpack::object& o, const std::string& field);
Expected<std::vector<std::string>> get_strings(const msgpack::object& o, const std::string& field);
// A number (read as one value) or an array of numbers.
Expected<std::vector<double>> get_numbers(const msgpack::object& o, const std::string& field);

// Validates {dtype, shape, data}: dtype known (unsupported_dtype), every dimension > 0 and
// `rank` dimensions when rank != 0 (bad_shape, field.shape), data bin of exactly
// product(shape) * itemsize bytes (bad_shape, field.data). Copies data only when `copy_data`;
// `data_view`, when given, is pointed at the data bin in the parsed bytes.
Expected<TypedArray> decode_typed_array(const msgpack::object& o, const std::string& field,
                                        size_t rank, bool copy_data = true,
                                        std::string_view* data_view = nullptr);

// The one job decoder: decode_job() with the choice of not copying the samples. The broker
// validates exactly what the worker will, without copying megabytes it only forwards; the worker
// (DecodedJob) reads the samples where they arrived. `samples`, when given, is pointed at the
// ecg.data bytes inside `body` (valid while `body` is).
Expected<Job> decode_job_body(std::string_view body, bool copy_samples,
                              std::string_view* samples = nullptr);

// Packs a string key.
void pack_key(Packer& pk, const char* key);
// Packs a float64 that stays a float on the wire (msgpack-c 4 packs integral doubles as ints).
void pack_f64(Packer& pk, double value);
// Packs a float32 that stays a float on the wire.
void pack_f32(Packer& pk, float value);
// Appends already-encoded msgpack (one complete object) as the next value.
void pack_raw(Packer& pk, const std::string& msgpack_bytes);
// Packs {dtype, shape, data(bin)}.
void pack_typed_array(Packer& pk, const TypedArray& a);
// Packs {attempt, queued_ms}.
void pack_dispatch(Packer& pk, const DispatchInfo& d);

// Packs a model identity as {kind, name, sha256, precision} (results, READY, status, mmi.status).
void pack_model(Packer& pk, const ModelIdentity& m);

}  // namespace ecgq::schema::detail
