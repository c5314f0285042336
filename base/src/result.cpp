#include "base/result.h"

namespace base {

std::string_view code_name(Code code) {
  switch (code) {
    case Code::kInvalidArgument:
      return "invalidArgument";
    case Code::kIo:
      return "io";
    case Code::kCorrupt:
      return "corrupt";
    case Code::kTimeout:
      return "timeout";
    case Code::kUnavailable:
      return "unavailable";
    case Code::kUnauthorised:
      return "unauthorised";
    case Code::kNotFound:
      return "notFound";
    case Code::kExhausted:
      return "exhausted";
    case Code::kInternal:
      return "internal";
  }
  return "unknown";
}

std::string Error::to_string() const {
  return std::string(code_name(code)) + ": " + message;
}

Error current_exception_error(Code otherwise) {
  try {
    throw;
  } catch (const IoError& e) {
    return Error{Code::kIo, e.what()};
  } catch (const std::invalid_argument& e) {
    return Error{Code::kInvalidArgument, e.what()};
  } catch (const std::out_of_range& e) {
    return Error{Code::kInvalidArgument, e.what()};
  } catch (const std::bad_alloc&) {
    return Error{Code::kExhausted, "out of memory"};
  } catch (const std::exception& e) {
    return Error{otherwise, e.what()};
  } catch (...) {
    return Error{otherwise, "unknown exception"};
  }
}

}  // namespace base
