// Parameter sets of the RLWE scheme (the library's exception, fhe::FheError, is in fhe/error.h).
//
// The only parameter set today is P48 (see README "Parameters and security"):
//   ring Z_q[X]/(X^N + 1), N = 2048, q = 2^48 - 2^14 + 1 (prime, q = 1 mod 2^14),
//   secret uniform ternary, error centered binomial with eta = 21 (sigma ~ 3.24).
// log q = 48 <= 54, the Homomorphic Encryption Standard's bound for 128-bit classical security
// at N = 2048 with ternary secrets and sigma ~ 3.2.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "fhe/error.h"

namespace fhe {

struct Params {
  uint32_t id = 0;           // stored in files and messages
  const char* name = "";     // "P48"
  size_t n = 0;              // ring degree, a power of two
  uint64_t q = 0;            // prime modulus, q = 1 mod 2n
  uint32_t eta = 0;          // centered binomial parameter of the error
  uint32_t log2_q = 0;       // bits of q
  uint32_t coeff_bytes = 0;  // bytes of one packed coefficient on disk and on the wire

  // Variance of one error coefficient: eta / 2.
  double error_variance() const { return eta / 2.0; }

  static const Params& P48();
  // Looks a parameter set up by its id; throws FheError for an unknown id.
  static const Params& by_id(uint32_t id);
};

constexpr uint32_t kP48Id = 1;

// Largest |x| of an int8 activation and largest |w| of an int8 weight.
constexpr int64_t kInt8Magnitude = 128;

}  // namespace fhe
