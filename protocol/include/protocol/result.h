// Errors as values: every fallible function of the protocol library returns a Result<T> (a value
// or an Error) or a Status (Result<void>), never throws out of the library and never aborts.
//
// An Error has a code and one readable line. The first codes are the ones a worker sends back in
// a reply (schema/worker.capnp, enum ErrorCode); the local codes describe failures that never
// reach the wire (a receive that timed out, a socket that failed, a bad key file).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>

namespace protocol {

enum class ErrorCode : uint16_t {
  // Codes that travel in replies (same numbers as the schema).
  kMalformedRequest = 1,
  kUnknownModel = 2,
  kUnknownLayer = 3,
  kShapeMismatch = 4,
  kNoiseBudget = 5,
  kOverloaded = 6,
  kInternal = 7,
  kUnauthorised = 8,
  kUnsupportedVersion = 9,
  // Local codes: never sent (encoding one is refused).
  kTimeout = 100,          // nothing arrived before the deadline
  kTransport = 101,        // a ZeroMQ call failed
  kInvalidArgument = 102,  // bad configuration: key material, endpoint, options
  kIo = 103,               // a file could not be read or written
};

// True for the codes that may appear in a reply on the wire.
bool is_wire_code(ErrorCode code);
// "malformedRequest", "timeout", ...; "unknown(<n>)" for a value outside the enum.
std::string_view error_code_name(ErrorCode code);

struct Error {
  ErrorCode code = ErrorCode::kInternal;
  std::string message;  // one line, no trailing newline

  // "<code name>: <message>".
  std::string to_string() const;
  bool operator==(const Error&) const = default;
};

// Shorthand used throughout the library: make_error(ErrorCode::kShapeMismatch, "rows ", 3, ...).
template <typename... Parts>
Error make_error(ErrorCode code, const Parts&... parts) {
  std::string message;
  auto append = [&message](const auto& part) {
    if constexpr (std::is_convertible_v<decltype(part), std::string_view>) {
      message += std::string_view(part);
    } else {
      message += std::to_string(part);
    }
  };
  (append(parts), ...);
  return Error{code, std::move(message)};
}

// Either a T or an Error. Check ok() before value(); value() on an error is a programming bug
// (std::bad_variant_access).
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::in_place_index<0>, std::move(value)) {}  // NOLINT: implicit on purpose
  Result(Error error) : v_(std::in_place_index<1>, std::move(error)) {}  // NOLINT

  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }

  T& value() & { return std::get<0>(v_); }
  const T& value() const& { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  const Error& error() const { return std::get<1>(v_); }

 private:
  std::variant<T, Error> v_;
};

// Success or an Error.
template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(Error error) : error_(std::move(error)), ok_(false) {}  // NOLINT: implicit on purpose

  bool ok() const { return ok_; }
  explicit operator bool() const { return ok_; }
  const Error& error() const { return error_; }

 private:
  Error error_;
  bool ok_ = true;
};

using Status = Result<void>;

inline Status ok_status() {
  return Status();
}

}  // namespace protocol
