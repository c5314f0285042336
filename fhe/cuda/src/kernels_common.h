// Arithmetic shared by the CUDA kernels and their host-side tests: AES-128 (T-table form) for the
// seed expansion, the signed digit split and the recombination modulo q. Everything here is
// __host__ __device__ and free of library calls, so the CPU tests check the very code the GPU
// runs against OpenSSL and against fhe::reference_multiply.
//
// Signed digits. With S = (2^48 - 1) / 255 = sum_k 256^k, six signed bytes d_k in [-128, 127]
// represent exactly the 2^48 integers v = sum_k d_k 256^k in [-128 S, 127 S]. A coefficient c in
// [0, q) (q < 2^48) is mapped to its representative v = c (c <= 127 S) or v = c - q in that
// range (the centred one, except for c in (127 S, q / 2], about 0.4% of the values, which go
// negative), and u = v + 128 S is in [0, 2^48):
// d_k = byte_k(u) - 128. Then sum_j m_j c_j = sum_k 256^k sum_j m_j d_jk (mod q), and with
// |m| <= 128, |d| <= 128 every plane sum fits int32 while the inner dimension is below 2^17.
#pragma once

#include <cstddef>
#include <cstdint>

#if defined(__CUDACC__)
#define FHE_HD __host__ __device__ __forceinline__
#else
#define FHE_HD inline
#endif

namespace fhe::cuda_detail {

constexpr int kPlanes = 6;  // signed 8-bit digits of a 48-bit coefficient
constexpr uint64_t kDigitUnit = ((uint64_t{1} << 48) - 1) / 255;  // S
constexpr uint64_t kDigitOffset = 128 * kDigitUnit;               // 128 S
constexpr uint64_t kDigitMaxPositive = 127 * kDigitUnit;          // 127 S
// Largest inner dimension whose plane sums (|.| <= in * 128 * 128) fit int32.
constexpr uint64_t kMaxInnerDim = (uint64_t{1} << 31) / (128 * 128) - 1;

// u = v + 128 S for the representative v of c (c < q) in [-128 S, 127 S]; digit k of c is
// byte k of u minus 128.
FHE_HD uint64_t offset_digits(uint64_t c, uint64_t q) {
  return c <= kDigitMaxPositive ? c + kDigitOffset : c + kDigitOffset - q;
}

// Digit k (0..5) of u = offset_digits(c, q) as a signed byte.
FHE_HD int8_t digit(uint64_t u, int k) {
  return static_cast<int8_t>(static_cast<uint8_t>((u >> (8 * k)) & 0xff) ^ 0x80);
}

// Reduces v (|v| < 2^58) modulo q = 2^48 - 2^14 + 1 into [0, q), using 2^48 = 2^14 - 1 (mod q).
FHE_HD uint64_t reduce_p48(int64_t v, uint64_t q) {
  const int64_t sq = static_cast<int64_t>(q);
  const int64_t hi = v >> 48;  // |hi| <= 2^10
  int64_t r = (v & ((int64_t{1} << 48) - 1)) + hi * ((int64_t{1} << 14) - 1);
  r += (r < 0) ? sq : 0;
  r -= (r >= sq) ? sq : 0;
  return static_cast<uint64_t>(r);
}

// sum_k 256^k p_k mod q for the six plane sums p_k (|p_k| < 2^31) of one output coefficient.
FHE_HD uint64_t recombine(const int32_t p[kPlanes], uint64_t q) {
  // lo = p0 + p1 2^8 + p2 2^16 + p3 2^24 (|lo| < 2^56), hi = p4 + p5 2^8 (|hi| < 2^40) carries
  // weight 2^32: hi 2^32 = h1 2^48 + h0 2^32 with 0 <= h0 < 2^16, and 2^48 = 2^14 - 1 (mod q).
  const int64_t lo = static_cast<int64_t>(p[0]) + static_cast<int64_t>(p[1]) * (int64_t{1} << 8) +
                     static_cast<int64_t>(p[2]) * (int64_t{1} << 16) +
                     static_cast<int64_t>(p[3]) * (int64_t{1} << 24);
  const int64_t hi = static_cast<int64_t>(p[4]) + static_cast<int64_t>(p[5]) * (int64_t{1} << 8);
  const int64_t h0 = hi & 0xffff, h1 = hi >> 16;
  return reduce_p48(lo + h0 * (int64_t{1} << 32) + h1 * ((int64_t{1} << 14) - 1), q);
}

// ---- 48-bit packing (transfers) -------------------------------------------------------------
// Coefficients (< q < 2^48) travel between host and device as 6 little-endian bytes each:
// coefficient k of a packed array occupies bytes 6k .. 6k+5.

constexpr size_t kPackedBytes = 6;
constexpr uint64_t kMask48 = (uint64_t{1} << 48) - 1;

FHE_HD void store48(uint64_t v, uint8_t* p) {
  for (int i = 0; i < 6; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
}

FHE_HD uint64_t load48(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 0; i < 6; ++i) v |= uint64_t{p[i]} << (8 * i);
  return v;
}

// ---- AES-128 -------------------------------------------------------------------------------

FHE_HD uint8_t gf_mul2(uint8_t x) {
  return static_cast<uint8_t>((x << 1) ^ ((x & 0x80) ? 0x1b : 0));
}

FHE_HD uint8_t gf_mul(uint8_t a, uint8_t b) {
  uint8_t r = 0;
  for (int i = 0; i < 8; ++i) {
    if (b & 1) r ^= a;
    a = gf_mul2(a);
    b >>= 1;
  }
  return r;
}

// The AES S-box entry of x, computed (inverse in GF(2^8) as x^254, then the affine map).
FHE_HD uint8_t aes_sbox(uint8_t x) {
  uint8_t inv = 1, base = x;
  for (int e = 254; e; e >>= 1) {
    if (e & 1) inv = gf_mul(inv, base);
    base = gf_mul(base, base);
  }
  if (x == 0) inv = 0;
  uint8_t s = inv;
  for (int i = 1; i <= 4; ++i) s ^= static_cast<uint8_t>((inv << i) | (inv >> (8 - i)));
  return static_cast<uint8_t>(s ^ 0x63);
}

// Te0[x] = S[x] * (02, 01, 01, 03) as a big-endian word; Te1..Te3 are its byte rotations.
FHE_HD uint32_t aes_te0(uint8_t s) {
  const uint8_t s2 = gf_mul2(s), s3 = static_cast<uint8_t>(s2 ^ s);
  return (uint32_t{s2} << 24) | (uint32_t{s} << 16) | (uint32_t{s} << 8) | uint32_t{s3};
}

FHE_HD uint32_t rotr32(uint32_t x, int r) {
  return (x >> r) | (x << (32 - r));
}

FHE_HD uint32_t load_be32(const uint8_t* b) {
  return (uint32_t{b[0]} << 24) | (uint32_t{b[1]} << 16) | (uint32_t{b[2]} << 8) | uint32_t{b[3]};
}

// The 44 round-key words of AES-128 (big-endian words, FIPS-197 order).
FHE_HD void aes128_expand_key(const uint8_t key[16], uint32_t rk[44]) {
  for (int i = 0; i < 4; ++i) rk[i] = load_be32(key + 4 * i);
  uint8_t rcon = 1;
  for (int i = 4; i < 44; ++i) {
    uint32_t t = rk[i - 1];
    if (i % 4 == 0) {
      t = (uint32_t{aes_sbox((t >> 16) & 0xff)} << 24) |
          (uint32_t{aes_sbox((t >> 8) & 0xff)} << 16) | (uint32_t{aes_sbox(t & 0xff)} << 8) |
          uint32_t{aes_sbox(t >> 24)};
      t ^= uint32_t{rcon} << 24;
      rcon = gf_mul2(rcon);
    }
    rk[i] = rk[i - 4] ^ t;
  }
}

// Encrypts one block given as four big-endian words, with lookup tables te0[256] (aes_te0 of
// the S-box) and sbox[256].
FHE_HD void aes128_encrypt(const uint32_t rk[44], const uint32_t* te0, const uint8_t* sbox,
                           const uint32_t in[4], uint32_t out[4]) {
  uint32_t s0 = in[0] ^ rk[0], s1 = in[1] ^ rk[1], s2 = in[2] ^ rk[2], s3 = in[3] ^ rk[3];
#define FHE_AES_COL(a, b, c, d, k)                                                            \
  (te0[(a) >> 24] ^ rotr32(te0[((b) >> 16) & 0xff], 8) ^ rotr32(te0[((c) >> 8) & 0xff], 16) ^ \
   rotr32(te0[(d)&0xff], 24) ^ rk[k])
  for (int r = 1; r < 10; ++r) {
    const uint32_t t0 = FHE_AES_COL(s0, s1, s2, s3, 4 * r);
    const uint32_t t1 = FHE_AES_COL(s1, s2, s3, s0, 4 * r + 1);
    const uint32_t t2 = FHE_AES_COL(s2, s3, s0, s1, 4 * r + 2);
    const uint32_t t3 = FHE_AES_COL(s3, s0, s1, s2, 4 * r + 3);
    s0 = t0;
    s1 = t1;
    s2 = t2;
    s3 = t3;
  }
#undef FHE_AES_COL
#define FHE_AES_LAST(a, b, c, d, k)                                                 \
  ((uint32_t{sbox[(a) >> 24]} << 24) ^ (uint32_t{sbox[((b) >> 16) & 0xff]} << 16) ^ \
   (uint32_t{sbox[((c) >> 8) & 0xff]} << 8) ^ uint32_t{sbox[(d)&0xff]} ^ rk[k])
  out[0] = FHE_AES_LAST(s0, s1, s2, s3, 40);
  out[1] = FHE_AES_LAST(s1, s2, s3, s0, 41);
  out[2] = FHE_AES_LAST(s2, s3, s0, s1, 42);
  out[3] = FHE_AES_LAST(s3, s0, s1, s2, 43);
#undef FHE_AES_LAST
}

// The counter block of keystream block `block` of seed row `row` (prng.h): the seed's 128-bit
// big-endian counter plus row * 2^32 (64-bit wrap, as SeedExpander), then plus block, all modulo
// 2^128 as OpenSSL's CTR mode increments it. base_hi/base_lo: the seed counter's two halves.
FHE_HD void ctr_block(uint64_t base_hi, uint64_t base_lo, uint64_t row, uint64_t block,
                      uint32_t out[4]) {
  uint64_t lo = base_lo + (row << 32);
  uint64_t hi = base_hi + (lo < base_lo ? 1 : 0);
  const uint64_t lo2 = lo + block;
  hi += lo2 < lo ? 1 : 0;
  lo = lo2;
  out[0] = static_cast<uint32_t>(hi >> 32);
  out[1] = static_cast<uint32_t>(hi);
  out[2] = static_cast<uint32_t>(lo >> 32);
  out[3] = static_cast<uint32_t>(lo);
}

// Keystream words 8g .. 8g+7 of a row (6-byte little-endian words, the 48 bytes of blocks 3g,
// 3g+1, 3g+2).
FHE_HD void keystream_words8(const uint32_t rk[44], const uint32_t* te0, const uint8_t* sbox,
                             uint64_t base_hi, uint64_t base_lo, uint64_t row, uint64_t g,
                             uint64_t words[8]) {
  uint32_t ks[12];
  for (int b = 0; b < 3; ++b) {
    uint32_t ctr[4];
    ctr_block(base_hi, base_lo, row, 3 * g + b, ctr);
    aes128_encrypt(rk, te0, sbox, ctr, ks + 4 * b);
  }
  for (int m = 0; m < 8; ++m) {
    uint64_t w = 0;
    for (int i = 0; i < 6; ++i) {
      const int byte = 6 * m + i;
      const uint64_t v = (ks[byte / 4] >> (24 - 8 * (byte % 4))) & 0xff;
      w |= v << (8 * i);
    }
    words[m] = w;
  }
}

// Seed data for the expansion kernel.
struct SeedKey {
  uint32_t rk[44];
  uint64_t base_hi, base_lo;
};

FHE_HD void make_seed_key(const uint8_t seed[32], SeedKey& k) {
  aes128_expand_key(seed, k.rk);
  k.base_hi = (uint64_t{load_be32(seed + 16)} << 32) | load_be32(seed + 20);
  k.base_lo = (uint64_t{load_be32(seed + 24)} << 32) | load_be32(seed + 28);
}

}  // namespace fhe::cuda_detail
