// Range checks of integer fields: each names the field, the range and what it got.
#include "protocol/schema_msgpack.hpp"

namespace ecgq::schema::detail {

Expected<int64_t> get_integer_in(const msgpack::object& o, const std::string& field, int64_t lo,
                                 int64_t hi, const std::string& unit) {
  ASSIGN_OR_RETURN(const int64_t v, get_integer(o, field));
  if (v < lo || v > hi) {
    return Status(ErrorCode::BadRequest,
                  field + " must be in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]" +
                      (unit.empty() ? "" : " " + unit) + ", got " + std::to_string(v),
                  field);
  }
  return v;
}

}  // namespace ecgq::schema::detail
