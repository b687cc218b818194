// Status and Expected<T>: the return types of operations that fail in normal use.
#pragma once

#include <optional>
#include <string>
#include <utility>
#include <variant>

namespace ecgq {

// An error with a machine-readable code, a human message and the offending field (may be empty).
class Status {
 public:
  // The success value.
  Status() = default;
  // An error; `code` is one of the error codes of docs/protocol.md.
  Status(std::string code, std::string message, std::string field = {})
      : code_(std::move(code)), message_(std::move(message)), field_(std::move(field)) {}

  // A success value, spelled out for readability at call sites.
  static Status Ok() { return Status(); }

  // True when this is not an error.
  bool ok() const { return code_.empty(); }
  // The error code ("" when ok).
  const std::string& code() const { return code_; }
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

}  // namespace ecgq
