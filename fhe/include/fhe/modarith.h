// Modular arithmetic helpers for word-sized primes (q < 2^62).
#pragma once

#include <cstdint>

namespace fhe {

using u128 = unsigned __int128;
using i128 = __int128;

inline uint64_t mul_mod(uint64_t a, uint64_t b, uint64_t q) {
  return static_cast<uint64_t>(static_cast<u128>(a) * b % q);
}

inline uint64_t pow_mod(uint64_t base, uint64_t exp, uint64_t q) {
  uint64_t r = 1 % q;
  base %= q;
  while (exp) {
    if (exp & 1) r = mul_mod(r, base, q);
    base = mul_mod(base, base, q);
    exp >>= 1;
  }
  return r;
}

inline uint64_t add_mod(uint64_t a, uint64_t b, uint64_t q) {
  uint64_t s = a + b;
  return s >= q ? s - q : s;
}

inline uint64_t sub_mod(uint64_t a, uint64_t b, uint64_t q) {
  return a >= b ? a - b : a + q - b;
}

// Shoup's precomputation for multiplying by a fixed w < q: floor(w * 2^64 / q).
inline uint64_t shoup(uint64_t w, uint64_t q) {
  return static_cast<uint64_t>((static_cast<u128>(w) << 64) / q);
}

// x * w mod q in [0, 2q) for any 64-bit x, given wp = shoup(w, q).
inline uint64_t mul_shoup_lazy(uint64_t x, uint64_t w, uint64_t wp, uint64_t q) {
  uint64_t hi = static_cast<uint64_t>((static_cast<u128>(x) * wp) >> 64);
  return x * w - hi * q;
}

inline uint64_t mul_shoup(uint64_t x, uint64_t w, uint64_t wp, uint64_t q) {
  uint64_t r = mul_shoup_lazy(x, w, wp, q);
  return r >= q ? r - q : r;
}

// Deterministic Miller-Rabin for 64-bit integers.
bool is_prime_u64(uint64_t n);

// Reduces a signed value into [0, q).
inline uint64_t reduce_signed(int64_t v, uint64_t q) {
  int64_t r = v % static_cast<int64_t>(q);
  return static_cast<uint64_t>(r < 0 ? r + static_cast<int64_t>(q) : r);
}

// Centered representative of v in [0, q): in (-q/2, q/2].
inline int64_t center(uint64_t v, uint64_t q) {
  return v > q / 2 ? static_cast<int64_t>(v) - static_cast<int64_t>(q) : static_cast<int64_t>(v);
}

}  // namespace fhe
