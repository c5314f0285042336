// AVX-512 IFMA element-wise kernels (see simd_ops.h). This file must not instantiate standard
// library templates: anything inline here is compiled for AVX-512 and must never be picked by the
// linker for code that runs on other CPUs.
#include <immintrin.h>

#include "simd_ops.h"

namespace fhe::detail {

void mul_pointwise_ifma(const uint64_t* a, const uint64_t* b, const uint64_t* b52, uint64_t* out,
                        size_t n, uint64_t q) {
  const __m512i vq = _mm512_set1_epi64(static_cast<long long>(q));
  const __m512i mask52 = _mm512_set1_epi64((1ll << 52) - 1);
  const __m512i zero = _mm512_setzero_si512();
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m512i x = _mm512_loadu_si512(a + i);
    const __m512i w = _mm512_loadu_si512(b + i);
    const __m512i wp = _mm512_loadu_si512(b52 + i);
    const __m512i qhat = _mm512_madd52hi_epu64(zero, x, wp);         // floor(x * wp / 2^52)
    const __m512i xw = _mm512_madd52lo_epu64(zero, x, w);            // (x * w) mod 2^52
    const __m512i qq = _mm512_madd52lo_epu64(zero, qhat, vq);        // (qhat * q) mod 2^52
    __m512i r = _mm512_and_si512(_mm512_sub_epi64(xw, qq), mask52);  // in [0, 2q)
    r = _mm512_min_epu64(r, _mm512_sub_epi64(r, vq));
    _mm512_storeu_si512(out + i, r);
  }
  for (; i < n; ++i) {
    const unsigned __int128 p = static_cast<unsigned __int128>(a[i]) * b[i];
    out[i] = static_cast<uint64_t>(p % q);
  }
}

void round_decode_avx512(const uint64_t* c0, const uint64_t* v, int64_t* out, size_t count,
                         uint64_t q, int d) {
  const int64_t sq = static_cast<int64_t>(q), half_q = static_cast<int64_t>(q / 2);
  const int64_t half = int64_t{1} << (d - 1);
  for (size_t t = 0; t < count; ++t) {
    int64_t s = static_cast<int64_t>(c0[t] + v[t]);
    s -= (s >= sq) ? sq : 0;
    s -= (s > half_q) ? sq : 0;
    out[t] = (s + half) >> d;
  }
}

void encode_avx512(const int8_t* m, size_t valid, const int64_t* e, const uint64_t* as,
                   uint64_t* out, size_t n, uint64_t q, int d) {
  const int64_t sq = static_cast<int64_t>(q);
  for (size_t t = 0; t < n; ++t) {
    const int64_t mv = t < valid ? m[t] : 0;
    int64_t v = mv * (int64_t{1} << d) + e[t] - static_cast<int64_t>(as[t]);
    v += (v < 0) ? sq : 0;
    v += (v < 0) ? sq : 0;
    out[t] = static_cast<uint64_t>(v);
  }
}

}  // namespace fhe::detail
