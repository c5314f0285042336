// A matrix of RLWE ciphertexts with tokens along the polynomial coefficients.
//
// A plaintext matrix X (rows x cols, int8) is cut into blocks of n = 2048 columns (tokens); the
// last block is zero-padded. Ciphertext (block b, row j) encrypts the polynomial
// m(X) = sum_t X[j, b*n + t] * X^t scaled by delta = 2^log2_delta:
//     c0 = delta*m + e - a*s,   c1 = a
// A *fresh* ciphertext (as encrypted by a participant) stores only c0 and the seed that expands
// every c1 = a row in the NTT domain. A *product* ciphertext (as computed by a worker) stores c0
// and c1 explicitly, c1 in the NTT domain. Both are laid out block-major: element
// (b, j, t) sits at index (b*rows + j)*n + t of c0 and c1.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "fhe/prng.h"

namespace fhe {

enum class CtKind : uint32_t { kFresh = 1, kProduct = 2 };

struct CiphertextMatrix {
  uint32_t params_id = 0;
  CtKind kind = CtKind::kFresh;
  uint64_t rows = 0;  // features (d_in for a fresh one, d_out for a product)
  uint64_t cols = 0;  // tokens T
  uint32_t log2_delta = 0;
  Seed seed{};                 // expands c1 of a fresh ciphertext
  std::vector<uint64_t> c0;    // blocks * rows * n
  std::vector<uint64_t> c1;    // product only: blocks * rows * n, NTT domain

  static size_t blocks_for(uint64_t cols, size_t n) { return (cols + n - 1) / n; }
  size_t blocks(size_t n) const { return blocks_for(cols, n); }
};

}  // namespace fhe
