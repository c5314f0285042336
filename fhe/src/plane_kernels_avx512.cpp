// The digit-plane kernels with AVX-512 intrinsics: 8 x 8 blocks of 64-bit words are transposed in
// registers, so the split reads rows of the ciphertext block and writes 8-byte runs of the digit
// matrix, and the recombination reads rows of the GEMM output and writes 64-byte runs of the
// result. Remainder rows/outputs (not a multiple of 8) use the shared portable source compiled
// here (plane_kernels.inc), which gives identical results.
#include <immintrin.h>

#include <cstdint>

#include "plane_kernels.h"

namespace fhe::detail {
namespace avx512 {
#include "plane_kernels.inc"

// In-register transpose of an 8 x 8 matrix of 64-bit words: r[i] holds row i on entry and
// column i on exit.
static inline void transpose8x8(__m512i r[8]) {
  __m512i t[8], u[8];
  for (int i = 0; i < 4; ++i) {
    t[2 * i] = _mm512_unpacklo_epi64(r[2 * i], r[2 * i + 1]);      // cols 0,2,4,6 of rows 2i,2i+1
    t[2 * i + 1] = _mm512_unpackhi_epi64(r[2 * i], r[2 * i + 1]);  // cols 1,3,5,7
  }
  const __m512i lo = _mm512_set_epi64(13, 12, 5, 4, 9, 8, 1, 0);
  const __m512i hi = _mm512_set_epi64(15, 14, 7, 6, 11, 10, 3, 2);
  // u[0]: col 0 | col 4 of rows 0-3; u[1]: cols 2|6; u[2]: cols 1|5; u[3]: cols 3|7 (rows 0-3);
  // u[4..7]: the same for rows 4-7.
  for (int h = 0; h < 2; ++h) {
    u[4 * h + 0] = _mm512_permutex2var_epi64(t[4 * h + 0], lo, t[4 * h + 2]);
    u[4 * h + 1] = _mm512_permutex2var_epi64(t[4 * h + 0], hi, t[4 * h + 2]);
    u[4 * h + 2] = _mm512_permutex2var_epi64(t[4 * h + 1], lo, t[4 * h + 3]);
    u[4 * h + 3] = _mm512_permutex2var_epi64(t[4 * h + 1], hi, t[4 * h + 3]);
  }
  r[0] = _mm512_shuffle_i64x2(u[0], u[4], 0x44);
  r[4] = _mm512_shuffle_i64x2(u[0], u[4], 0xEE);
  r[2] = _mm512_shuffle_i64x2(u[1], u[5], 0x44);
  r[6] = _mm512_shuffle_i64x2(u[1], u[5], 0xEE);
  r[1] = _mm512_shuffle_i64x2(u[2], u[6], 0x44);
  r[5] = _mm512_shuffle_i64x2(u[2], u[6], 0xEE);
  r[3] = _mm512_shuffle_i64x2(u[3], u[7], 0x44);
  r[7] = _mm512_shuffle_i64x2(u[3], u[7], 0xEE);
}

// Tiles of 64 rows x 8 tokens: eight 8 x 8 register transposes produce, for every (token, plane),
// the 64 digit bytes of rows j0..j0+63, gathered in an L1 staging buffer and written to the digit
// matrix as one full 64-byte line.
static constexpr size_t kAhead = 16;
static void split_avx512(const uint64_t* c, size_t rows, size_t n, size_t t0, size_t ct, int bits,
                         int planes, uint8_t* a) {
  const size_t rows64 = rows & ~size_t{63};
  const __m128i mask = _mm_set1_epi8(static_cast<char>((1 << bits) - 1));
  alignas(64) uint8_t stage[8][8][64];  // [token][plane][row within tile]
  __m512i r[8];
  for (size_t j0 = 0; j0 < rows64; j0 += 64) {
    for (size_t tb = 0; tb < ct; tb += 8) {
      for (int sub = 0; sub < 8; ++sub) {
        const size_t jr = j0 + 8 * static_cast<size_t>(sub);
        // The rows are far apart (a stride of n words), so no hardware prefetcher follows them:
        // ask for the lines kAhead rows ahead.
        const size_t jp = jr + kAhead < rows ? jr + kAhead : jr;
        for (int i = 0; i < 8; ++i) {
          _mm_prefetch(reinterpret_cast<const char*>(c + (jp + i) * n + t0 + tb), _MM_HINT_T0);
        }
        for (int i = 0; i < 8; ++i) r[i] = _mm512_loadu_si512(c + (jr + i) * n + t0 + tb);
        transpose8x8(r);  // r[t]: token tb+t of rows jr..jr+7
        for (int t = 0; t < 8; ++t) {
          for (int k = 0; k < planes; ++k) {
            const __m512i sh = _mm512_srli_epi64(r[t], static_cast<unsigned>(bits * k));
            _mm_storel_epi64(reinterpret_cast<__m128i*>(&stage[t][k][8 * sub]),
                             _mm_and_si128(_mm512_cvtepi64_epi8(sh), mask));
          }
        }
      }
      for (int t = 0; t < 8; ++t) {
        for (int k = 0; k < planes; ++k) {
          _mm512_storeu_si512(a + (static_cast<size_t>(k) * ct + tb + t) * rows + j0,
                              _mm512_load_si512(stage[t][k]));
        }
      }
    }
  }
  if (rows64 < rows) split_digits_kernel(c, rows, n, t0, ct, bits, planes, a, rows64);
}

// Sum of the planes of 8 outputs, reduced into [0, q).
static inline __m512i recombine8(__m512i lo, __m512i hi, int hs, __m512i lowmask, __m512i mask48,
                                 __m512i vq) {
  // v = lo + h0 * 2^hs + h1 * (2^14 - 1), with hi = h1 * 2^(48-hs) + h0.
  const __m512i h0 = _mm512_and_si512(hi, lowmask);
  const __m512i h1 = _mm512_srai_epi64(hi, static_cast<unsigned>(48 - hs));
  __m512i v = _mm512_add_epi64(lo, _mm512_slli_epi64(h0, static_cast<unsigned>(hs)));
  v = _mm512_add_epi64(v, _mm512_sub_epi64(_mm512_slli_epi64(h1, 14), h1));
  // Reduce with 2^48 = 2^14 - 1 (mod q), then into [0, q).
  const __m512i top = _mm512_srai_epi64(v, 48);
  v = _mm512_add_epi64(_mm512_and_si512(v, mask48),
                       _mm512_sub_epi64(_mm512_slli_epi64(top, 14), top));
  v = _mm512_mask_add_epi64(v, _mm512_cmplt_epi64_mask(v, _mm512_setzero_si512()), v, vq);
  return _mm512_mask_sub_epi64(v, _mm512_cmpge_epi64_mask(v, vq), v, vq);
}

// Blocks of 16 outputs x 8 tokens: each plane row contributes one 64-byte load per token.
static void recombine_avx512(const int32_t* d, size_t out, size_t ct, int bits, int planes,
                             uint64_t* y, size_t n, size_t t0, uint64_t q) {
  const size_t out16 = out & ~size_t{15};
  const int hs = 4 * bits;
  const __m512i vq = _mm512_set1_epi64(static_cast<long long>(q));
  const __m512i lowmask = _mm512_set1_epi64((1ll << (48 - hs)) - 1);
  const __m512i mask48 = _mm512_set1_epi64((1ll << 48) - 1);
  __m512i ra[8], rb[8];
  const bool aligned = (reinterpret_cast<uintptr_t>(y + t0) % 64 == 0) && (n % 8 == 0);
  for (size_t i0 = 0; i0 < out16; i0 += 16) {
    for (size_t tb = 0; tb < ct; tb += 8) {
      for (int t = 0; t < 8; ++t) {
        __m512i lo_a = _mm512_setzero_si512(), hi_a = lo_a, lo_b = lo_a, hi_b = lo_a;
        for (int k = 0; k < planes; ++k) {
          const __m512i p =
              _mm512_loadu_si512(d + (static_cast<size_t>(k) * ct + tb + t) * out + i0);
          const __m512i va = _mm512_cvtepi32_epi64(_mm512_castsi512_si256(p));
          const __m512i vb = _mm512_cvtepi32_epi64(_mm512_extracti64x4_epi64(p, 1));
          if (k < 4) {
            const unsigned sh = static_cast<unsigned>(bits * k);
            lo_a = _mm512_add_epi64(lo_a, _mm512_slli_epi64(va, sh));
            lo_b = _mm512_add_epi64(lo_b, _mm512_slli_epi64(vb, sh));
          } else {
            const unsigned sh = static_cast<unsigned>(bits * (k - 4));
            hi_a = _mm512_add_epi64(hi_a, _mm512_slli_epi64(va, sh));
            hi_b = _mm512_add_epi64(hi_b, _mm512_slli_epi64(vb, sh));
          }
        }
        ra[t] = recombine8(lo_a, hi_a, hs, lowmask, mask48, vq);  // outputs i0..i0+7
        rb[t] = recombine8(lo_b, hi_b, hs, lowmask, mask48, vq);  // outputs i0+8..i0+15
      }
      transpose8x8(ra);  // ra[i]: tokens tb..tb+7 of output i0+i
      transpose8x8(rb);
      if (aligned) {
        // Streaming stores: the result lines are written whole and not read again here, so
        // skip reading them into the cache first.
        for (int i = 0; i < 8; ++i) {
          _mm512_stream_si512(reinterpret_cast<__m512i*>(y + (i0 + i) * n + t0 + tb), ra[i]);
          _mm512_stream_si512(reinterpret_cast<__m512i*>(y + (i0 + 8 + i) * n + t0 + tb), rb[i]);
        }
      } else {
        for (int i = 0; i < 8; ++i) {
          _mm512_storeu_si512(y + (i0 + i) * n + t0 + tb, ra[i]);
          _mm512_storeu_si512(y + (i0 + 8 + i) * n + t0 + tb, rb[i]);
        }
      }
    }
  }
  if (out16 < out) recombine_kernel(d, out, ct, bits, planes, y, n, t0, q, out16);
  _mm_sfence();
}

}  // namespace avx512

PlaneKernels plane_kernels_avx512() {
  return {avx512::split_avx512, avx512::recombine_avx512};
}

}  // namespace fhe::detail
