// Internal: vectorised element-wise kernels of encryption and decryption (AVX-512 IFMA), built from
// simd_ops_avx512.cpp with AVX-512 code-generation flags. Call only when
// detail::cpu_has_avx512ifma() is true; the portable versions live next to their callers and give
// identical results.
#pragma once

#include <cstddef>
#include <cstdint>

namespace fhe::detail {

// out[i] = a[i] * b[i] mod q in [0, q), for a[i] < q < 2^50, b52[i] = floor(b[i] * 2^52 / q).
void mul_pointwise_ifma(const uint64_t* a, const uint64_t* b, const uint64_t* b52, uint64_t* out,
                        size_t n, uint64_t q);

// out[t] = (centre((c0[t] + v[t]) mod q) + 2^(d-1)) >> d for t < count (c0, v in [0, q)).
void round_decode_avx512(const uint64_t* c0, const uint64_t* v, int64_t* out, size_t count,
                         uint64_t q, int d);

// out[t] = (m[t] * 2^d + e[t] - as[t]) mod q for t < n, where m[t] = 0 for t >= valid.
void encode_avx512(const int8_t* m, size_t valid, const int64_t* e, const uint64_t* as,
                   uint64_t* out, size_t n, uint64_t q, int d);

}  // namespace fhe::detail

namespace fhe::detail {

// True when the CPU and OS support AVX-512 F/BW, VBMI and VPOPCNTDQ (cpuid + xgetbv; safe on any
// x86-64 CPU). Those kernels below need it in addition to the base AVX-512 features.
bool cpu_has_avx512_vbmi_popcnt();

// Unpacks n 6-byte little-endian words (in must have 16 readable bytes past 6n) into out and
// returns non-zero when any word is >= q.
uint64_t unpack48_avx512(const uint8_t* in, size_t n, uint64_t* out, uint64_t q);

// Centred binomial samples from random 64-bit words, 24 samples per block of 16 words:
//   out[i]      = pop(w[i] & m)             - pop((w[i] >> eta) & m)
//   out[8 + i]  = pop(w[8 + i] & m)         - pop((w[8 + i] >> eta) & m)
//   out[16 + i] = pop((w[i] >> 2 eta) & m)  - pop((w[8 + i] >> 2 eta) & m),   i < 8, m = 2^eta - 1
// (the portable version in prng.cpp uses the same mapping). Requires 3 * eta <= 64.
void cbd_blocks_avx512(const uint64_t* w, size_t blocks, uint32_t eta, int64_t* out);

}  // namespace fhe::detail
