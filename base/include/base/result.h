// Errors as values (docs/conventions.md): a function whose failure crosses a process or a thread
// boundary returns a Result<T> (a value or an error) or a Status (Result<void>) instead of
// throwing. There is one Result template; the error type is a parameter:
//   base::Error       general codes (invalid argument, I/O, corrupt, timeout, ...) for files,
//                     configuration and local failures, the default;
//   protocol::Error   the codes a worker sends in a reply (protocol/result.h), which map onto
//                     these (protocol::to_base).
// capture(f) runs code that throws and turns its exception into an Error.
#pragma once

#include <cstdint>
#include <exception>
#include <new>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>

#include "base/error.h"

namespace base {

enum class Code : uint16_t {
  kInvalidArgument = 1,  // a bad option, parameter or configuration
  kIo = 2,               // a file or a socket could not be read or written
  kCorrupt = 3,          // input that does not parse or fails its checks
  kTimeout = 4,          // nothing arrived before the deadline
  kUnavailable = 5,      // a peer or resource that is not there (now): retry may help
  kUnauthorised = 6,     // an identity or key that is refused
  kNotFound = 7,         // a named thing (model, layer, file, tensor) that does not exist
  kExhausted = 8,        // a budget (privacy, noise, memory, queue) that would be exceeded
  kInternal = 9,         // a bug or an unexpected failure
};

// "invalidArgument", "io", ...; "unknown" for a value outside the enum.
std::string_view code_name(Code code);

struct Error {
  Code code = Code::kInternal;
  std::string message;  // one line, no trailing newline

  // "<code name>: <message>".
  std::string to_string() const;
  bool operator==(const Error&) const = default;
};

// Appends the parts (strings, string views, numbers) into one message.
template <typename... Parts>
std::string join_message(const Parts&... parts) {
  std::string message;
  auto append = [&message](const auto& part) {
    if constexpr (std::is_convertible_v<decltype(part), std::string_view>) {
      message += std::string_view(part);
    } else {
      message += std::to_string(part);
    }
  };
  (append(parts), ...);
  return message;
}

// make_error(Code::kCorrupt, "line ", 3, ": ", reason).
template <typename... Parts>
Error make_error(Code code, const Parts&... parts) {
  return Error{code, join_message(parts...)};
}

// Either a T or an E. Check ok() before value(); value() on an error is a programming bug
// (std::bad_variant_access).
template <typename T, typename E = Error>
class [[nodiscard]] Result {
 public:
  using value_type = T;
  using error_type = E;

  Result(T value) : v_(std::in_place_index<0>, std::move(value)) {}  // NOLINT: implicit on purpose
  Result(E error) : v_(std::in_place_index<1>, std::move(error)) {}   // NOLINT

  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }

  T& value() & { return std::get<0>(v_); }
  const T& value() const& { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  const E& error() const { return std::get<1>(v_); }

 private:
  std::variant<T, E> v_;
};

// Success or an E.
template <typename E>
class [[nodiscard]] Result<void, E> {
 public:
  using value_type = void;
  using error_type = E;

  Result() = default;
  Result(E error) : error_(std::move(error)), ok_(false) {}  // NOLINT: implicit on purpose

  bool ok() const { return ok_; }
  explicit operator bool() const { return ok_; }
  const E& error() const { return error_; }

 private:
  E error_;
  bool ok_ = true;
};

using Status = Result<void>;

inline Status ok_status() {
  return Status();
}

// The Error for the exception being handled (call inside a catch block): base::IoError is kIo,
// std::invalid_argument / std::out_of_range kInvalidArgument, std::bad_alloc kExhausted, and
// anything else `otherwise` (a library's own exception: its caller knows what it means).
Error current_exception_error(Code otherwise);

// Runs f() and returns its value, or the Error of the exception it threw
// (current_exception_error). f returning void gives a Status.
template <class F>
auto capture(F&& f, Code otherwise = Code::kInternal) -> Result<std::invoke_result_t<F&>> {
  using T = std::invoke_result_t<F&>;
  try {
    if constexpr (std::is_void_v<T>) {
      f();
      return Result<void>();
    } else {
      return Result<T>(f());
    }
  } catch (...) {
    return current_exception_error(otherwise);
  }
}

}  // namespace base
