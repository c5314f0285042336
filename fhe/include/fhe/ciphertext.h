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
#include <memory>
#include <new>
#include <utility>
#include <vector>

#include "fhe/prng.h"

namespace fhe {

// Allocator for coefficient buffers: 64-byte aligned (whole cache lines, so the worker can write
// results with streaming stores) and default-initialising (resize() does not zero-fill buffers
// that are about to be overwritten in full).
template <typename T>
struct CoeffAllocator {
  using value_type = T;
  CoeffAllocator() = default;
  template <typename U>
  CoeffAllocator(const CoeffAllocator<U>&) noexcept {}
  T* allocate(size_t count) {
    return static_cast<T*>(::operator new (count * sizeof(T), std::align_val_t{64}));
  }
  void deallocate(T* p, size_t) noexcept { ::operator delete (p, std::align_val_t{64}); }
  template <typename U>
  void construct(U* p) noexcept {
    ::new (static_cast<void*>(p)) U;
  }
  template <typename U, typename... Args>
  void construct(U* p, Args&&... args) {
    ::new (static_cast<void*>(p)) U(std::forward<Args>(args)...);
  }
  template <typename U>
  bool operator==(const CoeffAllocator<U>&) const noexcept {
    return true;
  }
};

using CoeffVector = std::vector<uint64_t, CoeffAllocator<uint64_t>>;

// kSwitched: a product whose reply was modulus-switched to 2^log2_modulus (switch_modulus in
// modswitch.h); c0 and c1 are then both in the coefficient domain, each coefficient below
// 2^log2_modulus.
enum class CtKind : uint32_t { kFresh = 1, kProduct = 2, kSwitched = 3 };

// Rows [row_begin, row_begin + rows) of a product's planes as they came off the wire: for every
// block those rows' coefficients, `bits` bits each in one little-endian stream per plane (the
// layout of c0 and c1 restricted to the rows: element (b, j, t) at (b*rows + j - row_begin)*n + t).
// A product can then be decrypted from the received bytes one row at a time (Decryptor), without
// unpacking its planes whole first; `owner` keeps the bytes alive.
struct PackedRows {
  uint64_t row_begin = 0, rows = 0;
  const uint8_t* c0 = nullptr;
  const uint8_t* c1 = nullptr;
  size_t c0_bytes = 0, c1_bytes = 0;
  std::shared_ptr<const void> owner = nullptr;
};

struct CiphertextMatrix {
  uint32_t params_id = 0;
  CtKind kind = CtKind::kFresh;
  uint64_t rows = 0;  // features (d_in for a fresh one, d_out for a product)
  uint64_t cols = 0;  // tokens T
  uint32_t log2_delta = 0;
  uint32_t log2_modulus = 0;  // kSwitched only: the reply modulus is 2^log2_modulus
  Seed seed{};                // expands c1 of a fresh ciphertext
  CoeffVector c0;             // blocks * rows * n
  CoeffVector c1;             // products: blocks * rows * n (NTT domain for kProduct)
  // A product may instead keep its planes packed (then c0 and c1 are empty): segments in row
  // order that cover [0, rows), each coefficient packed_bits bits (log2 q for kProduct,
  // log2_modulus for kSwitched). validate() checks the layout; the range of every coefficient is
  // checked as it is unpacked.
  std::vector<PackedRows> packed;
  uint32_t packed_bits = 0;

  static size_t blocks_for(uint64_t cols, size_t n) { return (cols + n - 1) / n; }
  size_t blocks(size_t n) const { return blocks_for(cols, n); }
  bool is_packed() const { return !packed.empty(); }
};

}  // namespace fhe
