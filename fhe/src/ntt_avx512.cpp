// AVX-512 IFMA path of the negacyclic NTT (see ntt.h and ntt_simd.h).
//
// Same algorithms as the scalar reference in ntt.cpp: Cooley-Tukey forward with Harvey's lazy
// butterflies (values in [0, 4q)) and Gentleman-Sande inverse (values in [0, 2q)), each ending
// with a full reduction to [0, q). Since both paths return the canonical residue, their outputs
// agree word for word.
//
// Modular multiplication is Shoup's method on the 52-bit IFMA multiplier: for a fixed twiddle
// w < q < 2^50 we precompute w' = floor(w * 2^52 / q) < 2^52; then for any x < 2^52
//   Q = floor(x * w' / 2^52)                  (madd52hi)
//   r = (x * w - Q * q) mod 2^52              (two madd52lo, then a 52-bit mask)
// and r = x * w mod q lies in [0, 2q) (Q under-estimates floor(x * w / q) by at most one). All
// lazy values stay below 4q < 2^52, so they are valid multiplier inputs.
//
// Layout of the transform on n coefficients (n a power of two >= 16), in 8-lane vectors:
//  * stages whose butterfly distance t is >= 16 are vertical: x[j..j+7] and y[j..j+7] = x + t
//    are whole vectors and all lanes share one broadcast twiddle;
//  * the last four stages (t = 8, 4, 2, 1) run in registers on 16 coefficients at a time, a
//    pair of vectors A = a[16p .. 16p+7], B = a[16p+8 .. 16p+15]; lanes are regrouped with
//    permutes so each butterfly is again a vertical operation between two registers, with
//    per-lane twiddles from tables precomputed in that lane order (see the lane layout table
//    below).
// The inverse runs the same layouts in the opposite order and folds the scaling by n^-1 into
// its last stage.
//
// This translation unit is compiled with AVX-512 code generation flags. Everything except
// cpu_has_avx512ifma() is only reached after that function returned true; it merely jumps to
// detection code compiled without AVX-512 (target attribute), so it is safe on any x86-64 CPU.
#include <cpuid.h>

// GCC 12 reports the _mm512_undefined_epi32() placeholder inside several intrinsics (min, unpack,
// shuffle) as maybe-uninitialized once inlined (GCC bug 105593); silence it for those headers.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>

#include <cstddef>
#include <cstdint>
#include <new>

#include "ntt_simd.h"

namespace fhe::detail {

namespace {

// Compiles a function without AVX-512 (overriding the file's flags) and keeps it out of line, so
// the CPU check cannot pick up AVX-512 instructions (EVEX moves, mask-register spills).
#define FHE_NTT_NO_AVX512 __attribute__((target("no-avx512f"), noinline))

FHE_NTT_NO_AVX512 uint64_t read_xcr0() {
  uint32_t eax = 0, edx = 0;
  __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
  return (static_cast<uint64_t>(edx) << 32) | eax;
}

FHE_NTT_NO_AVX512 bool detect_avx512ifma() {
  // The <cpuid.h> macros expand inline, so no helper compiled with AVX-512 flags is called.
  unsigned int eax = 0, ebx = 0, ecx = 0, edx = 0;
  __cpuid(0, eax, ebx, ecx, edx);
  const unsigned int max_leaf = eax;
  if (max_leaf < 7) return false;
  __cpuid(1, eax, ebx, ecx, edx);
  if (!(ecx & (1u << 27))) return false;  // OSXSAVE: the OS enabled xgetbv.
  // XCR0: SSE (1), AVX (2), opmask (5), ZMM_Hi256 (6), Hi16_ZMM (7) state enabled by the OS.
  constexpr uint64_t kXcr0Avx512 = (1u << 1) | (1u << 2) | (1u << 5) | (1u << 6) | (1u << 7);
  if ((read_xcr0() & kXcr0Avx512) != kXcr0Avx512) return false;
  __cpuid_count(7, 0, eax, ebx, ecx, edx);
  // Leaf 7 subleaf 0, EBX: AVX512F (16), AVX512DQ (17), AVX512IFMA (21), AVX512BW (30),
  // AVX512VL (31).
  constexpr unsigned int kEbx = (1u << 16) | (1u << 17) | (1u << 21) | (1u << 30) | (1u << 31);
  return (ebx & kEbx) == kEbx;
}

// Cached answer: 0 = not yet known, 1 = no, 2 = yes. Racing first calls compute the same value.
FHE_NTT_NO_AVX512 bool cached_avx512ifma() {
  static int state = 0;
  int s = __atomic_load_n(&state, __ATOMIC_RELAXED);
  if (s == 0) {
    s = detect_avx512ifma() ? 2 : 1;
    __atomic_store_n(&state, s, __ATOMIC_RELAXED);
  }
  return s == 2;
}

#undef FHE_NTT_NO_AVX512

constexpr uint64_t kMask52 = (uint64_t{1} << 52) - 1;

// floor(w * 2^52 / q): the 52-bit Shoup factor of w < q.
uint64_t shoup52(uint64_t w, uint64_t q) {
  return static_cast<uint64_t>((static_cast<unsigned __int128>(w) << 52) / q);
}

uint64_t mulmod(uint64_t a, uint64_t b, uint64_t q) {
  return static_cast<uint64_t>(static_cast<unsigned __int128>(a) * b % q);
}

// Broadcast constants shared by all butterflies of a call.
struct Consts {
  __m512i q, two_q, neg_q, mask;  // neg_q = 2^52 - q, so madd52lo(acc, Q, neg_q) = acc - Q*q.
  explicit Consts(uint64_t qq)
      : q(_mm512_set1_epi64(static_cast<long long>(qq))),
        two_q(_mm512_set1_epi64(static_cast<long long>(2 * qq))),
        neg_q(_mm512_set1_epi64(static_cast<long long>((uint64_t{1} << 52) - qq))),
        mask(_mm512_set1_epi64(static_cast<long long>(kMask52))) {}
};

// x * w mod q in [0, 2q), for x < 2^52, w < q and wp = shoup52(w, q).
inline __m512i mul_lazy(__m512i x, __m512i w, __m512i wp, const Consts& c) {
  const __m512i zero = _mm512_setzero_si512();
  const __m512i qhat = _mm512_madd52hi_epu64(zero, x, wp);
  __m512i r = _mm512_madd52lo_epu64(zero, x, w);
  r = _mm512_madd52lo_epu64(r, qhat, c.neg_q);
  return _mm512_and_si512(r, c.mask);
}

// v in [0, 2m) -> v mod m, for m = q or 2q: if v < m, v - m wraps to a huge value and min keeps v.
inline __m512i reduce_once(__m512i v, __m512i m) {
  return _mm512_min_epu64(v, _mm512_sub_epi64(v, m));
}

// Harvey forward butterfly: x, y in [0, 4q) -> x + w*y, x - w*y, both in [0, 4q).
inline void ct_butterfly(__m512i& x, __m512i& y, __m512i w, __m512i wp, const Consts& c) {
  const __m512i u = reduce_once(x, c.two_q);
  const __m512i v = mul_lazy(y, w, wp, c);
  x = _mm512_add_epi64(u, v);
  y = _mm512_sub_epi64(_mm512_add_epi64(u, c.two_q), v);
}

// Gentleman-Sande inverse butterfly: x, y in [0, 2q) -> x + y, (x - y) * w, both in [0, 2q).
inline void gs_butterfly(__m512i& x, __m512i& y, __m512i w, __m512i wp, const Consts& c) {
  const __m512i u = x, v = y;
  x = reduce_once(_mm512_add_epi64(u, v), c.two_q);
  y = mul_lazy(_mm512_sub_epi64(_mm512_add_epi64(u, c.two_q), v), w, wp, c);
}

// Last inverse butterfly with the n^-1 scaling folded in, fully reduced:
// x, y in [0, 2q) -> (x + y) / n, (x - y) * w / n in [0, q); nw = w * n^-1 mod q.
inline void gs_butterfly_scaled(__m512i& x, __m512i& y, __m512i ninv, __m512i ninvp, __m512i nw,
                                __m512i nwp, const Consts& c) {
  const __m512i u = x, v = y;
  x = reduce_once(mul_lazy(_mm512_add_epi64(u, v), ninv, ninvp, c), c.q);
  y = reduce_once(mul_lazy(_mm512_sub_epi64(_mm512_add_epi64(u, c.two_q), v), nw, nwp, c), c.q);
}

inline __m512i load(const uint64_t* p) {
  return _mm512_loadu_si512(p);
}
inline void store(uint64_t* p, __m512i v) {
  _mm512_storeu_si512(p, v);
}
inline __m512i bcast(uint64_t v) {
  return _mm512_set1_epi64(static_cast<long long>(v));
}

// Lane layouts of a block of 16 coefficients a[16p + k], written Ak = a[16p + k] and
// Bk = a[16p + 8 + k] (k < 8). In every layout the butterfly partners sit in the same lane of
// two registers X, Y:
//   t = 8: X = A0 A1 A2 A3 A4 A5 A6 A7   Y = B0 B1 B2 B3 B4 B5 B6 B7   (natural order)
//   t = 4: X = A0 A1 A2 A3 B0 B1 B2 B3   Y = A4 A5 A6 A7 B4 B5 B6 B7
//   t = 2: X = A0 A1 A4 A5 B0 B1 B4 B5   Y = A2 A3 A6 A7 B2 B3 B6 B7
//   t = 1: X = A0 A2 A4 A6 B0 B2 B4 B6   Y = A1 A3 A5 A7 B1 B3 B5 B7
// The butterfly of coefficient g = 16p + k at distance t uses twiddle index m + g / (2t) with
// m = n / (2t), so lane l of the twiddle vector is, per stage:
//   t = 8: m + p (broadcast)
//   t = 4: m + 2p + l / 4
//   t = 2: m + 4p + l / 2
//   t = 1: m + 8p + l         (contiguous: read straight from the bit-reversed table)
// Per block p the tables hold four vectors: w(t=4), w'(t=4), w(t=2), w'(t=2).
constexpr size_t kPairWords = 32;

// t = 8 <-> t = 4: 128-bit chunk shuffles.
inline void layout8_to_4(__m512i& x, __m512i& y) {
  const __m512i a = x, b = y;
  x = _mm512_shuffle_i64x2(a, b, _MM_SHUFFLE(1, 0, 1, 0));
  y = _mm512_shuffle_i64x2(a, b, _MM_SHUFFLE(3, 2, 3, 2));
}
inline void layout4_to_8(__m512i& x, __m512i& y) {
  layout8_to_4(x, y);
}  // An involution.

// t = 4 <-> t = 2: the same two-source permute in both directions.
inline void layout4_to_2(__m512i& x, __m512i& y) {
  const __m512i lo = _mm512_set_epi64(13, 12, 5, 4, 9, 8, 1, 0);
  const __m512i hi = _mm512_set_epi64(15, 14, 7, 6, 11, 10, 3, 2);
  const __m512i a = x, b = y;
  x = _mm512_permutex2var_epi64(a, lo, b);
  y = _mm512_permutex2var_epi64(a, hi, b);
}
inline void layout2_to_4(__m512i& x, __m512i& y) {
  layout4_to_2(x, y);
}

// t = 2 <-> t = 1: 64-bit unpacks one way; the other way the unpacks yield the t = 2 layout
// directly.
inline void layout2_to_1(__m512i& x, __m512i& y) {
  const __m512i a = x, b = y;
  x = _mm512_unpacklo_epi64(a, b);
  y = _mm512_unpackhi_epi64(a, b);
}
inline void layout1_to_2(__m512i& x, __m512i& y) {
  layout2_to_1(x, y);
}

// Natural order <-> t = 2 layout and natural order <-> t = 1 layout, used to enter or leave the
// register block with two permutes instead of four.
inline void layout2_to_8(__m512i& x, __m512i& y) {
  const __m512i ia = _mm512_set_epi64(11, 10, 3, 2, 9, 8, 1, 0);
  const __m512i ib = _mm512_set_epi64(15, 14, 7, 6, 13, 12, 5, 4);
  const __m512i l = x, h = y;
  x = _mm512_permutex2var_epi64(l, ia, h);
  y = _mm512_permutex2var_epi64(l, ib, h);
}
inline void layout8_to_1(__m512i& x, __m512i& y) {
  const __m512i even = _mm512_set_epi64(14, 12, 10, 8, 6, 4, 2, 0);
  const __m512i odd = _mm512_set_epi64(15, 13, 11, 9, 7, 5, 3, 1);
  const __m512i a = x, b = y;
  x = _mm512_permutex2var_epi64(a, even, b);
  y = _mm512_permutex2var_epi64(a, odd, b);
}

}  // namespace

bool cpu_has_avx512ifma() {
  return cached_avx512ifma();
}

// Twiddle storage, one 64-byte aligned block (immutable after construction, so concurrent const
// calls are safe):
//   fw[k], fwp[k]    psi_br[k] and its 52-bit Shoup factor, k < n (vertical stages, t = 8, t = 1)
//   iw[k], iwp[k]    the same for psi_inv_br
//   fpair, ipair     per 16-coefficient block p: kPairWords words, see the lane layouts above
struct NttSimd::Impl {
  size_t n;
  uint64_t q;
  uint64_t* buf;
  const uint64_t *fw, *fwp, *iw, *iwp, *fpair, *ipair;
  // n^-1 and, for the last inverse stage (m = 1), w = psi_inv_br[1] times n^-1; with Shoup factors.
  uint64_t ninv, ninvp, nw, nwp;

  explicit Impl(const NttTables& t);
  ~Impl() { ::operator delete[](buf, std::align_val_t{64}); }
  Impl(const Impl&) = delete;
  Impl& operator=(const Impl&) = delete;

  void forward(uint64_t* a) const;
  void inverse(uint64_t* a) const;
};

NttSimd::Impl::Impl(const NttTables& t) : n(t.n), q(t.q) {
  const size_t words = 4 * n + 2 * (n / 16) * kPairWords;
  buf = static_cast<uint64_t*>(::operator new[](words * sizeof(uint64_t), std::align_val_t{64}));
  uint64_t* p = buf;
  uint64_t* fw_ = p;
  uint64_t* fwp_ = p + n;
  uint64_t* iw_ = p + 2 * n;
  uint64_t* iwp_ = p + 3 * n;
  uint64_t* fpair_ = p + 4 * n;
  uint64_t* ipair_ = fpair_ + (n / 16) * kPairWords;
  const uint64_t* psi = t.psi_br->data();
  const uint64_t* psi_inv = t.psi_inv_br->data();
  for (size_t k = 0; k < n; ++k) {
    fw_[k] = psi[k];
    fwp_[k] = shoup52(psi[k], q);
    iw_[k] = psi_inv[k];
    iwp_[k] = shoup52(psi_inv[k], q);
  }
  for (size_t blk = 0; blk < n / 16; ++blk) {
    uint64_t* f = fpair_ + blk * kPairWords;
    uint64_t* g = ipair_ + blk * kPairWords;
    for (size_t l = 0; l < 8; ++l) {
      const size_t k4 = n / 8 + 2 * blk + l / 4;  // t = 4
      const size_t k2 = n / 4 + 4 * blk + l / 2;  // t = 2
      f[l] = fw_[k4];
      f[8 + l] = fwp_[k4];
      f[16 + l] = fw_[k2];
      f[24 + l] = fwp_[k2];
      g[l] = iw_[k4];
      g[8 + l] = iwp_[k4];
      g[16 + l] = iw_[k2];
      g[24 + l] = iwp_[k2];
    }
  }
  fw = fw_;
  fwp = fwp_;
  iw = iw_;
  iwp = iwp_;
  fpair = fpair_;
  ipair = ipair_;
  ninv = t.n_inv;
  ninvp = shoup52(ninv, q);
  nw = mulmod(iw_[1], ninv, q);
  nwp = shoup52(nw, q);
}

void NttSimd::Impl::forward(uint64_t* a) const {
  const Consts c(q);
  // Vertical stages, t = n/2 down to 16: m blocks of 2t coefficients, one twiddle per block.
  size_t m = 1;
  for (size_t t = n / 2; t >= 16; t >>= 1, m <<= 1) {
    for (size_t i = 0; i < m; ++i) {
      const __m512i w = bcast(fw[m + i]), wp = bcast(fwp[m + i]);
      uint64_t* x = a + 2 * i * t;
      uint64_t* y = x + t;
      for (size_t j = 0; j < t; j += 8) {
        __m512i u = load(x + j), v = load(y + j);
        ct_butterfly(u, v, w, wp, c);
        store(x + j, u);
        store(y + j, v);
      }
    }
  }
  // Stages t = 8, 4, 2, 1 in registers, 16 coefficients at a time, then the final reduction.
  const size_t blocks = n / 16;
  for (size_t p = 0; p < blocks; ++p) {
    uint64_t* blk = a + 16 * p;
    const uint64_t* tw = fpair + p * kPairWords;
    __m512i x = load(blk), y = load(blk + 8);
    ct_butterfly(x, y, bcast(fw[blocks + p]), bcast(fwp[blocks + p]), c);
    layout8_to_4(x, y);
    ct_butterfly(x, y, load(tw), load(tw + 8), c);
    layout4_to_2(x, y);
    ct_butterfly(x, y, load(tw + 16), load(tw + 24), c);
    layout2_to_1(x, y);
    ct_butterfly(x, y, load(fw + n / 2 + 8 * p), load(fwp + n / 2 + 8 * p), c);
    x = reduce_once(reduce_once(x, c.two_q), c.q);
    y = reduce_once(reduce_once(y, c.two_q), c.q);
    layout1_to_2(x, y);
    layout2_to_8(x, y);
    store(blk, x);
    store(blk + 8, y);
  }
}

void NttSimd::Impl::inverse(uint64_t* a) const {
  const Consts c(q);
  const size_t blocks = n / 16;
  // Stages t = 1, 2, 4, 8 in registers, 16 coefficients at a time. For n = 16 the t = 8 stage
  // is the last one and carries the n^-1 scaling.
  for (size_t p = 0; p < blocks; ++p) {
    uint64_t* blk = a + 16 * p;
    const uint64_t* tw = ipair + p * kPairWords;
    __m512i x = load(blk), y = load(blk + 8);
    layout8_to_1(x, y);
    gs_butterfly(x, y, load(iw + n / 2 + 8 * p), load(iwp + n / 2 + 8 * p), c);
    layout1_to_2(x, y);
    gs_butterfly(x, y, load(tw + 16), load(tw + 24), c);
    layout2_to_4(x, y);
    gs_butterfly(x, y, load(tw), load(tw + 8), c);
    layout4_to_8(x, y);
    if (n == 16) {
      gs_butterfly_scaled(x, y, bcast(ninv), bcast(ninvp), bcast(nw), bcast(nwp), c);
    } else {
      gs_butterfly(x, y, bcast(iw[blocks + p]), bcast(iwp[blocks + p]), c);
    }
    store(blk, x);
    store(blk + 8, y);
  }
  if (n == 16) return;
  // Vertical stages t = 16 .. n/4, m = n / (2t) blocks of 2t coefficients.
  size_t t = 16;
  for (size_t m = n / 32; m >= 2; m >>= 1, t <<= 1) {
    for (size_t i = 0; i < m; ++i) {
      const __m512i w = bcast(iw[m + i]), wp = bcast(iwp[m + i]);
      uint64_t* x = a + 2 * i * t;
      uint64_t* y = x + t;
      for (size_t j = 0; j < t; j += 8) {
        __m512i u = load(x + j), v = load(y + j);
        gs_butterfly(u, v, w, wp, c);
        store(x + j, u);
        store(y + j, v);
      }
    }
  }
  // Last stage, t = n/2, with the n^-1 scaling and the final reduction folded in.
  const __m512i vninv = bcast(ninv), vninvp = bcast(ninvp), vnw = bcast(nw), vnwp = bcast(nwp);
  uint64_t* x = a;
  uint64_t* y = a + n / 2;
  for (size_t j = 0; j < n / 2; j += 8) {
    __m512i u = load(x + j), v = load(y + j);
    gs_butterfly_scaled(u, v, vninv, vninvp, vnw, vnwp, c);
    store(x + j, u);
    store(y + j, v);
  }
}

NttSimd::NttSimd(const NttTables& t) : impl_(new Impl(t)) {}
NttSimd::~NttSimd() {
  delete impl_;
}
void NttSimd::forward(uint64_t* a) const {
  impl_->forward(a);
}
void NttSimd::inverse(uint64_t* a) const {
  impl_->inverse(a);
}

}  // namespace fhe::detail

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
