// Encryption and decryption of int8 matrices, tokens along the coefficients.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "fhe/ciphertext.h"
#include "fhe/noise.h"
#include "fhe/secret_key.h"

namespace fhe {

class Encryptor {
 public:
  // Keeps a reference: the key must outlive the encryptor.
  explicit Encryptor(const SecretKey& key);

  // Encrypts X (row-major rows x cols int8) with delta = 2^log2_delta under a fresh seed and
  // fresh errors. Uses all OpenMP threads over ciphertext rows.
  CiphertextMatrix encrypt(const int8_t* x, size_t rows, size_t cols, uint32_t log2_delta) const;
  // Same, reusing out's storage (no allocation when its shape is unchanged).
  void encrypt_into(const int8_t* x, size_t rows, size_t cols, uint32_t log2_delta,
                    CiphertextMatrix& out) const;

  // Same, with delta chosen for a product by a matrix with these bounds (choose_log2_delta).
  CiphertextMatrix encrypt(const int8_t* x, size_t rows, size_t cols, const WeightBounds& bounds,
                           uint64_t outputs = kDefaultMaxOutputs) const;

 private:
  const SecretKey& key_;
};

class Decryptor {
 public:
  explicit Decryptor(const SecretKey& key);

  // Decrypts a product (or a fresh) ciphertext matrix into a row-major rows x cols int64 matrix.
  // Throws FheError for a ciphertext of another parameter set or with inconsistent sizes.
  std::vector<int64_t> decrypt(const CiphertextMatrix& ct) const;
  // Same, into caller storage of rows * cols values.
  void decrypt_into(const CiphertextMatrix& ct, int64_t* y) const;

  // Same, handing each decrypted row to `sink` instead of storing the matrix: sink(i, t0, v)
  // receives v[k] = y(i, t0 + k) for one block of tokens (each (row, block) exactly once, from
  // every OpenMP thread at once, so the sink must be safe for distinct rows, and must not throw).
  // For a consumer
  // that turns the integers into something else at once (dequantization), without a rows x
  // cols int64 matrix in memory.
  using RowSink = std::function<void(size_t row, size_t first_token, std::span<const int64_t>)>;
  void decrypt_rows(const CiphertextMatrix& ct, const RowSink& sink) const;

 private:
  // decrypt_into (y) or decrypt_rows (sink), one of them null.
  void decrypt_impl(const CiphertextMatrix& ct, int64_t* y, const RowSink* sink) const;
  void decrypt_switched(const CiphertextMatrix& ct, int64_t* y, const RowSink* sink) const;
  const SecretKey& key_;
};

// Checks that a ciphertext matrix is well formed for ctx: parameter id, kind, sizes, and (unless
// check_range is false) every coefficient below q. Throws FheError naming the first problem.
void validate(const Context& ctx, const CiphertextMatrix& ct, bool check_range = true);

// The same ciphertext with packed planes (CiphertextMatrix::packed) unpacked into c0 and c1,
// every coefficient checked; an unpacked one is returned as it is. Throws FheError.
CiphertextMatrix unpacked(const Context& ctx, const CiphertextMatrix& ct);

}  // namespace fhe
