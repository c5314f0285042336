// AVX-512 IFMA element-wise kernels (see simd_ops.h). This file must not instantiate standard
// library templates: anything inline here is compiled for AVX-512 and must never be picked by the
// linker for code that runs on other CPUs.
#include <immintrin.h>

#include <cstdint>

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
  const __m512i vq = _mm512_set1_epi64(static_cast<long long>(q));
  const __m512i half_q = _mm512_set1_epi64(static_cast<long long>(q / 2));
  const __m512i half = _mm512_set1_epi64(1ll << (d - 1));
  auto decode = [&](__m512i a, __m512i b) {
    __m512i s = _mm512_add_epi64(a, b);  // < 2q
    s = _mm512_mask_sub_epi64(s, _mm512_cmpge_epu64_mask(s, vq), s, vq);
    s = _mm512_mask_sub_epi64(s, _mm512_cmpgt_epu64_mask(s, half_q), s, vq);  // centred
    return _mm512_srai_epi64(_mm512_add_epi64(s, half), static_cast<unsigned>(d));
  };
  size_t t = 0;
  // Scalar head until the output is 64-byte aligned, then streaming stores: the plaintext result
  // is written once and not read back here.
  for (; t < count && (reinterpret_cast<uintptr_t>(out + t) & 63) != 0; ++t) {
    int64_t x = static_cast<int64_t>(c0[t] + v[t]);
    x -= (x >= static_cast<int64_t>(q)) ? static_cast<int64_t>(q) : 0;
    x -= (x > static_cast<int64_t>(q / 2)) ? static_cast<int64_t>(q) : 0;
    out[t] = (x + (int64_t{1} << (d - 1))) >> d;
  }
  for (; t + 8 <= count; t += 8) {
    const __m512i r = decode(_mm512_loadu_si512(c0 + t), _mm512_loadu_si512(v + t));
    _mm512_stream_si512(reinterpret_cast<__m512i*>(out + t), r);
  }
  for (; t < count; ++t) {
    int64_t x = static_cast<int64_t>(c0[t] + v[t]);
    x -= (x >= static_cast<int64_t>(q)) ? static_cast<int64_t>(q) : 0;
    x -= (x > static_cast<int64_t>(q / 2)) ? static_cast<int64_t>(q) : 0;
    out[t] = (x + (int64_t{1} << (d - 1))) >> d;
  }
  _mm_sfence();
}

void encode_avx512(const int8_t* m, size_t valid, const int64_t* e, const uint64_t* as,
                   uint64_t* out, size_t n, uint64_t q, int d) {
  const __m512i vq = _mm512_set1_epi64(static_cast<long long>(q));
  const __m512i zero = _mm512_setzero_si512();
  const bool aligned = (reinterpret_cast<uintptr_t>(out) & 63) == 0 && n % 8 == 0;
  for (size_t t = 0; t < n; t += 8) {
    __m512i mv;
    if (t + 8 <= valid) {
      mv = _mm512_cvtepi8_epi64(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(m + t)));
    } else {
      alignas(16) int8_t tail[16] = {};
      for (size_t k = t; k < valid && k < t + 8; ++k) tail[k - t] = m[k];
      mv = _mm512_cvtepi8_epi64(_mm_load_si128(reinterpret_cast<const __m128i*>(tail)));
    }
    // m * 2^d + e - as, in (-2q, q): add q while negative.
    __m512i v = _mm512_add_epi64(_mm512_slli_epi64(mv, static_cast<unsigned>(d)),
                                 _mm512_loadu_si512(e + t));
    v = _mm512_sub_epi64(v, _mm512_loadu_si512(as + t));
    v = _mm512_mask_add_epi64(v, _mm512_cmplt_epi64_mask(v, zero), v, vq);
    v = _mm512_mask_add_epi64(v, _mm512_cmplt_epi64_mask(v, zero), v, vq);
    if (aligned) {
      _mm512_stream_si512(reinterpret_cast<__m512i*>(out + t), v);
    } else {
      _mm512_storeu_si512(out + t, v);
    }
  }
  if (aligned) _mm_sfence();
}

}  // namespace fhe::detail
