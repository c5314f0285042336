#include "protocol/result.h"

namespace protocol {

bool is_wire_code(ErrorCode code) {
  const auto v = static_cast<uint16_t>(code);
  return v >= static_cast<uint16_t>(ErrorCode::kMalformedRequest) &&
         v <= static_cast<uint16_t>(ErrorCode::kUnsupportedVersion);
}

std::string_view error_code_name(ErrorCode code) {
  switch (code) {
    case ErrorCode::kMalformedRequest:
      return "malformedRequest";
    case ErrorCode::kUnknownModel:
      return "unknownModel";
    case ErrorCode::kUnknownLayer:
      return "unknownLayer";
    case ErrorCode::kShapeMismatch:
      return "shapeMismatch";
    case ErrorCode::kNoiseBudget:
      return "noiseBudget";
    case ErrorCode::kOverloaded:
      return "overloaded";
    case ErrorCode::kInternal:
      return "internal";
    case ErrorCode::kUnauthorised:
      return "unauthorised";
    case ErrorCode::kUnsupportedVersion:
      return "unsupportedVersion";
    case ErrorCode::kTimeout:
      return "timeout";
    case ErrorCode::kTransport:
      return "transport";
    case ErrorCode::kInvalidArgument:
      return "invalidArgument";
    case ErrorCode::kIo:
      return "io";
    case ErrorCode::kHandshake:
      return "handshake";
  }
  return "unknown";
}

std::string Error::to_string() const {
  return std::string(error_code_name(code)) + ": " + message;
}

base::Code to_base_code(ErrorCode code) {
  switch (code) {
    case ErrorCode::kMalformedRequest:
      return base::Code::kCorrupt;
    case ErrorCode::kUnknownModel:
    case ErrorCode::kUnknownLayer:
      return base::Code::kNotFound;
    case ErrorCode::kShapeMismatch:
    case ErrorCode::kUnsupportedVersion:
    case ErrorCode::kInvalidArgument:
      return base::Code::kInvalidArgument;
    case ErrorCode::kNoiseBudget:
    case ErrorCode::kOverloaded:
      return base::Code::kExhausted;
    case ErrorCode::kUnauthorised:
    case ErrorCode::kHandshake:
      return base::Code::kUnauthorised;
    case ErrorCode::kTimeout:
      return base::Code::kTimeout;
    case ErrorCode::kTransport:
      return base::Code::kUnavailable;
    case ErrorCode::kIo:
      return base::Code::kIo;
    case ErrorCode::kInternal:
      break;
  }
  return base::Code::kInternal;
}

base::Error to_base(const Error& e) {
  return base::Error{to_base_code(e.code), e.to_string()};
}

}  // namespace protocol
