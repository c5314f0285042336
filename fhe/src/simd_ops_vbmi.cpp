// AVX-512 VBMI + VPOPCNTDQ kernels of the seed expansion and the error sampler (see simd_ops.h).
// Called only when cpu_has_avx512_vbmi_popcnt() is true. Like simd_ops_avx512.cpp, this file must
// not instantiate standard-library templates.
#include <immintrin.h>

#include "simd_ops.h"

namespace fhe::detail {

uint64_t unpack48_avx512(const uint8_t* in, size_t n, uint64_t* out, uint64_t q) {
  // Byte b < 6 of word v comes from input byte 6v + b; bytes 6 and 7 of each word are zeroed.
  alignas(64) uint8_t idx_bytes[64];
  for (int v = 0; v < 8; ++v) {
    for (int b = 0; b < 8; ++b) idx_bytes[8 * v + b] = static_cast<uint8_t>(b < 6 ? 6 * v + b : 0);
  }
  const __m512i idx = _mm512_load_si512(idx_bytes);
  const __mmask64 keep = 0x3F3F3F3F3F3F3F3Full;
  const __m512i vq = _mm512_set1_epi64(static_cast<long long>(q));
  __mmask8 bad = 0;
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m512i src = _mm512_loadu_si512(in + 6 * i);
    const __m512i w = _mm512_maskz_permutexvar_epi8(keep, idx, src);
    bad |= _mm512_cmpge_epu64_mask(w, vq);
    _mm512_storeu_si512(out + i, w);
  }
  uint64_t tail_bad = 0;
  for (; i < n; ++i) {
    uint64_t w = 0;
    for (int b = 5; b >= 0; --b) w = (w << 8) | in[6 * i + static_cast<size_t>(b)];
    out[i] = w;
    tail_bad |= (w >= q);
  }
  return bad | tail_bad;
}

void cbd_blocks_avx512(const uint64_t* w, size_t blocks, uint32_t eta, int64_t* out) {
  const __m512i m = _mm512_set1_epi64(static_cast<long long>((uint64_t{1} << eta) - 1));
  for (size_t k = 0; k < blocks; ++k) {
    const __m512i a = _mm512_loadu_si512(w + 16 * k);
    const __m512i b = _mm512_loadu_si512(w + 16 * k + 8);
    auto pc = [&](__m512i x) { return _mm512_popcnt_epi64(_mm512_and_si512(x, m)); };
    const __m512i s0 = _mm512_sub_epi64(pc(a), pc(_mm512_srli_epi64(a, eta)));
    const __m512i s1 = _mm512_sub_epi64(pc(b), pc(_mm512_srli_epi64(b, eta)));
    const __m512i s2 =
        _mm512_sub_epi64(pc(_mm512_srli_epi64(a, 2 * eta)), pc(_mm512_srli_epi64(b, 2 * eta)));
    _mm512_storeu_si512(out + 24 * k, s0);
    _mm512_storeu_si512(out + 24 * k + 8, s1);
    _mm512_storeu_si512(out + 24 * k + 16, s2);
  }
}

}  // namespace fhe::detail
