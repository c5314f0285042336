// Internal: numbers in error messages.
#pragma once

#include <charconv>
#include <string>

namespace privacy::internal {

// The shortest text that reads back as exactly v ("0.1", not "0.10000000000000001").
inline std::string format_number(double v) {
  char buf[64];
  const auto r = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, r.ptr);
}

}  // namespace privacy::internal
