// The exception of the fhe library (docs/conventions.md): every refusal of the library (bad
// parameters, an impossible noise budget, a malformed file) is an fhe::FheError whose message is
// one readable line.
#pragma once

#include <stdexcept>

namespace fhe {

class FheError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace fhe
