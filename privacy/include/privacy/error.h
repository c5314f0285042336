// The error type of the privacy library.
#pragma once

#include <stdexcept>

namespace privacy {

// Every refusal of the library (a parameter out of range, a budget that would be exceeded, a
// malformed or truncated state file) is reported as a privacy::PrivacyError whose message is one
// readable line.
class PrivacyError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace privacy
