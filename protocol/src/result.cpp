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
  }
  return "unknown";
}

std::string Error::to_string() const {
  return std::string(error_code_name(code)) + ": " + message;
}

}  // namespace protocol
