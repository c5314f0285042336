// Helpers shared by the fhe tests. Test data comes from fixed-seed generators so failures are
// reproducible; cryptographic randomness inside the library is untouched by this.
#pragma once

#include <cstdint>
#include <memory>
#include <random>
#include <vector>

#include "fhe/context.h"

namespace fhe_test {

// The default parameter set's context, created once for the whole test binary.
inline std::shared_ptr<const fhe::Context> ctx() {
  static auto c = fhe::Context::create();
  return c;
}

// Uniform int8 values over the whole range [-128, 127].
inline std::vector<int8_t> random_int8(size_t count, uint64_t seed) {
  std::mt19937_64 g(seed);
  std::vector<int8_t> v(count);
  for (auto& x : v) x = static_cast<int8_t>(static_cast<int>(g() % 256) - 128);
  return v;
}

// Plaintext product M*X in int64, M = W (d_out x d_in) or W^T; X has in_dim rows and t columns.
inline std::vector<int64_t> plain_product(const std::vector<int8_t>& w, size_t d_out, size_t d_in,
                                          bool transpose, const std::vector<int8_t>& x, size_t t) {
  const size_t in = transpose ? d_out : d_in, out = transpose ? d_in : d_out;
  std::vector<int64_t> y(out * t, 0);
  for (size_t i = 0; i < out; ++i) {
    for (size_t j = 0; j < in; ++j) {
      const int64_t m = transpose ? w[j * d_in + i] : w[i * d_in + j];
      const int8_t* xr = x.data() + j * t;
      int64_t* yr = y.data() + i * t;
      for (size_t c = 0; c < t; ++c) yr[c] += m * xr[c];
    }
  }
  return y;
}

}  // namespace fhe_test
