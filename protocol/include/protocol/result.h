// Errors as values: every fallible function of the protocol library returns a Result<T> (a value
// or an Error) or a Status (Result<void>), never throws out of the library and never aborts.
// Result is base::Result (base/result.h) with protocol's own Error, whose codes are the wire's.
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

#include "base/result.h"

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
  kHandshake = 104,        // the server refused the client's key or its CURVE handshake
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
  return Error{code, base::join_message(parts...)};
}

// The one Result template (base/result.h) over protocol's Error: a T or an Error, and a Status.
template <typename T>
using Result = base::Result<T, Error>;
using Status = Result<void>;

inline Status ok_status() {
  return Status();
}

// The general code of a protocol code (malformedRequest is corrupt, unknownModel and
// unknownLayer not found, noiseBudget and overloaded exhausted, ...), for callers that report a
// worker's refusal next to their own errors; the message is kept, prefixed with the code's name.
base::Code to_base_code(ErrorCode code);
base::Error to_base(const Error& e);

// Runs f() (code that throws: ZeroMQ, allocation, the fhe library) and returns its value, or an
// Error with `code` whose message is `context` followed by the exception's message. This is the
// one place where protocol's callers turn an exception into a value (docs/conventions.md).
template <class F>
auto capture(ErrorCode code, std::string_view context, F&& f) -> Result<std::invoke_result_t<F&>> {
  auto r = base::capture(f);
  if (!r.ok()) return Error{code, std::string(context) + r.error().message};
  if constexpr (std::is_void_v<std::invoke_result_t<F&>>) {
    return ok_status();
  } else {
    return std::move(r).value();
  }
}

}  // namespace protocol
