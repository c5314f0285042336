// The one-line message of a Boost.Program_options error, safe for any command line or INI file.
//
// Boost builds such a message in what() by replacing placeholders of its template
// ("%canonical_option%", "%value%", "%invalid_line%", ...) with the option name, the value or
// the line as given, until none is left: a name or value that itself contains its placeholder
// (an INI key `%canonical_option%`, `--threads %value%`) makes what() loop forever (Boost 1.74;
// found by tests/fuzz/fuzz_ini.cpp). option_error_message() first replaces every '%' and control
// character of those given parts by '?', then calls what(). Header-only: every executable's
// option parsing (fhe_worker, coordinator, participant, fedctl, fedsim) uses it.
#pragma once

#include <boost/program_options/errors.hpp>
#include <map>
#include <string>

namespace protocol {

namespace option_error_detail {

// Names the protected substitution table of an error_with_option_name (a member pointer taken
// through a derived class, the standard way to reach a protected member of a base object).
struct Substitutions : boost::program_options::error_with_option_name {
  using Table = std::map<std::string, std::string>;
  static auto table() -> Table boost::program_options::error_with_option_name::* {
    return &Substitutions::m_substitutions;
  }
};

}  // namespace option_error_detail

inline std::string option_error_message(const boost::program_options::error& e) {
  namespace po = boost::program_options;
  if (const auto* named = dynamic_cast<const po::error_with_option_name*>(&e)) {
    // The exception object itself is not const (it is caught by const reference).
    auto& mutable_error = const_cast<po::error_with_option_name&>(*named);
    for (auto& [placeholder, given] : mutable_error.*option_error_detail::Substitutions::table()) {
      for (char& c : given) {
        if (c == '%' || static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '?';
      }
    }
  }
  return e.what();
}

}  // namespace protocol
