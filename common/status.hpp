// Status and Expected<T>: the return types of operations that fail in normal use.
#pragma once

#include <optional>
#include <string>
#include <utility>
#include <variant>

#include "common/error_code.hpp"

namespace ecgq {

// An error with a machine-readable code, a human message and the offending field (may be empty).
class Status {
 public:
  // The success value.
  Status() = default;
  // An error with one of the codes of the table (common/error_code.hpp).
  Status(ErrorCode code, std::string message, std::string field = {})
      : code_(error_code_name(code)), message_(std::move(message)), field_(std::move(field)) {}
  // An error whose code is already a wire name: passed on from another Status or read from a
  // peer's result. New errors name an ErrorCode (scripts/check-error-codes flags literals here).
  Status(std::string code, std::string message, std::string field = {})
      : code_(std::move(code)), message_(std::move(message)), field_(std::move(field)) {}

  // A success value, spelled out for readability at call sites.
  static Status Ok() { return Status(); }

  // True when this is not an error.
  bool ok() const { return code_.empty(); }
  // The error code's wire name ("" when ok).
  const std::string& code() const { return code_; }
  // True when this is an error with `code`.
  bool is(ErrorCode code) const { return code_ == error_code_name(code); }
  // The human-readable message.
  const std::string& message() const { return message_; }
  // The input field the error is about, or "".
  const std::string& field() const { return field_; }
  // "code: message (field)" for logs and CLI errors.
  std::string to_string() const {
    if (ok()) return "ok";
    std::string s = code_ + ": " + message_;
    if (!field_.empty()) s += " (field " + field_ + ")";
    return s;
  }
  // The same error with "context: " before its message (a path, a setting).
  Status with_context(const std::string& context) const {
    return Status(code_, context + ": " + message_, field_);
  }

 private:
  std::string code_;
  std::string message_;
  std::string field_;
};

// Either a value or the Status that explains why there is none.
template <typename T>
class Expected {
 public:
  // Holds a value.
  Expected(T value) : state_(std::move(value)) {}  // NOLINT(google-explicit-constructor)
  // Holds an error; `status` must not be ok.
  Expected(Status status) : state_(std::move(status)) {}  // NOLINT(google-explicit-constructor)

  // True when a value is held.
  bool ok() const { return std::holds_alternative<T>(state_); }
  explicit operator bool() const { return ok(); }
  // The error (an ok Status when a value is held).
  Status status() const { return ok() ? Status() : std::get<Status>(state_); }
  // The value; only valid when ok().
  T& value() & { return std::get<T>(state_); }
  const T& value() const& { return std::get<T>(state_); }
  T&& value() && { return std::get<T>(std::move(state_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

 private:
  std::variant<T, Status> state_;
};

// The Status of a Status or of an Expected, for the macros below.
inline const Status& status_of(const Status& status) {
  return status;
}
inline Status status_of(Status&& status) {
  return std::move(status);
}
template <typename T>
Status status_of(const Expected<T>& expected) {
  return expected.status();
}

}  // namespace ecgq

#define ECGQ_STATUS_CONCAT_INNER(a, b) a##b
#define ECGQ_STATUS_CONCAT(a, b) ECGQ_STATUS_CONCAT_INNER(a, b)

// Returns from the calling function (which returns a Status or an Expected) with the error of
// `expr` (a Status or an Expected) when it is one.
#define RETURN_IF_ERROR(...)                                                              \
  do {                                                                                    \
    if (::ecgq::Status ecgq_status_ = ::ecgq::status_of(__VA_ARGS__); !ecgq_status_.ok()) \
      return ecgq_status_;                                                                \
  } while (0)

// Evaluates `expr` (an Expected<T>); on error returns its Status from the calling function, else
// moves the value into `lhs`, which may declare a variable: ASSIGN_OR_RETURN(auto job, decode(b)).
// It expands to several statements: under an `if`, put it in braces.
#define ASSIGN_OR_RETURN(lhs, ...) \
  ECGQ_ASSIGN_OR_RETURN_IMPL(ECGQ_STATUS_CONCAT(ecgq_expected_, __LINE__), lhs, __VA_ARGS__)
#define ECGQ_ASSIGN_OR_RETURN_IMPL(tmp, lhs, ...) \
  auto tmp = (__VA_ARGS__);                       \
  if (!tmp.ok()) return tmp.status();             \
  lhs = std::move(tmp).value()
