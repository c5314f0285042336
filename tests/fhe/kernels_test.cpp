// The vectorised kernels against their portable versions and against the formulas they compute.
// Skipped (with a message) on CPUs without the instructions.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "fhe/modarith.h"
#include "fhe/params.h"
#include "ntt_simd.h"
#include "plane_kernels.h"
#include "simd_ops.h"

namespace {

const uint64_t kQ = fhe::Params::P48().q;

std::vector<uint64_t> random_mod(size_t n, uint64_t q, uint64_t seed) {
  std::mt19937_64 g(seed);  // test data only
  std::vector<uint64_t> v(n);
  for (auto& x : v) x = g() % q;
  for (size_t i = 0; i < n && i < 4; ++i) v[i] = i % 2 ? q - 1 : 0;  // extremes
  return v;
}

TEST(PlaneKernels, Avx512SplitAndRecombineEqualThePortableOnes) {
  if (!fhe::detail::cpu_has_avx512ifma()) GTEST_SKIP() << "no AVX-512 IFMA on this CPU";
  const auto portable = fhe::detail::plane_kernels_portable();
  const auto avx = fhe::detail::plane_kernels_avx512();
  const size_t n = 2048;
  std::mt19937_64 g(7);
  // Odd sizes exercise the remainder paths (rows not a multiple of 64, outputs not of 16).
  for (size_t rows : {1, 63, 64, 200}) {
    for (int bits : {7, 8}) {
      const int planes = bits == 8 ? 6 : 7;
      const auto c = random_mod(rows * n, kQ, rows + bits);
      for (size_t ct : {8, 32}) {
        std::vector<uint8_t> a1(planes * ct * rows), a2(a1.size());
        portable.split(c.data(), rows, n, 16, ct, bits, planes, a1.data());
        avx.split(c.data(), rows, n, 16, ct, bits, planes, a2.data());
        ASSERT_EQ(a1, a2) << "split rows=" << rows << " bits=" << bits << " ct=" << ct;
        // Recombination of arbitrary int32 planes (the GEMM output), including the extremes.
        const size_t out = rows + 3;
        std::vector<int32_t> d(planes * ct * out);
        for (auto& x : d) x = static_cast<int32_t>(g());
        d[0] = INT32_MIN;
        d[1] = INT32_MAX;
        std::vector<uint64_t> y1(out * n, 0), y2(out * n, 0), y3(out * n, 0);
        portable.recombine(d.data(), out, ct, bits, planes, y1.data(), n, 16, kQ);
        avx.recombine(d.data(), out, ct, bits, planes, y2.data(), n, 16, kQ);
        ASSERT_EQ(y1, y2) << "recombine out=" << out << " bits=" << bits << " ct=" << ct;
        // ... and both equal sum_k 2^(bits k) d_k mod q computed in 128-bit arithmetic.
        for (size_t i = 0; i < out; ++i) {
          for (size_t t = 0; t < ct; ++t) {
            fhe::i128 acc = 0;
            for (int k = 0; k < planes; ++k) {
              acc += static_cast<fhe::i128>(d[(k * ct + t) * out + i]) << (bits * k);
            }
            acc %= static_cast<fhe::i128>(kQ);
            if (acc < 0) acc += kQ;
            ASSERT_EQ(y1[i * n + 16 + t], static_cast<uint64_t>(acc));
          }
        }
      }
    }
  }
}

TEST(SimdOps, ElementwiseKernelsComputeTheirFormulas) {
  if (!fhe::detail::cpu_has_avx512ifma()) GTEST_SKIP() << "no AVX-512 IFMA on this CPU";
  const size_t n = 2048 + 5;
  const auto a = random_mod(n, kQ, 1), b = random_mod(n, kQ, 2);
  std::vector<uint64_t> b52(n), out(n);
  for (size_t i = 0; i < n; ++i) {
    b52[i] = static_cast<uint64_t>((static_cast<fhe::u128>(b[i]) << 52) / kQ);
  }
  fhe::detail::mul_pointwise_ifma(a.data(), b.data(), b52.data(), out.data(), n, kQ);
  for (size_t i = 0; i < n; ++i) ASSERT_EQ(out[i], fhe::mul_mod(a[i], b[i], kQ));

  std::vector<int64_t> dec(n + 8);
  for (int offset : {0, 1, 3}) {  // unaligned output heads
    for (int d : {8, 20, 30}) {
      fhe::detail::round_decode_avx512(a.data(), b.data(), dec.data() + offset, n, kQ, d);
      for (size_t t = 0; t < n; ++t) {
        const int64_t v = fhe::center(fhe::add_mod(a[t], b[t], kQ), kQ);
        ASSERT_EQ(dec[offset + t], (v + (int64_t{1} << (d - 1))) >> d);
      }
    }
  }

  std::mt19937_64 g(3);
  std::vector<int8_t> m(2048);
  std::vector<int64_t> e(2048);
  for (auto& x : m) x = static_cast<int8_t>(static_cast<int>(g() % 256) - 128);
  for (auto& x : e) x = static_cast<int64_t>(g() % 43) - 21;
  const auto as = random_mod(2048, kQ, 4);
  for (size_t valid : {size_t{2048}, size_t{1000}, size_t{3}}) {
    std::vector<uint64_t> enc(2048);
    fhe::detail::encode_avx512(m.data(), valid, e.data(), as.data(), enc.data(), 2048, kQ, 21);
    for (size_t t = 0; t < 2048; ++t) {
      const int64_t mv = t < valid ? m[t] : 0;
      ASSERT_EQ(enc[t], fhe::reduce_signed(
                            mv * (int64_t{1} << 21) + e[t] - static_cast<int64_t>(as[t]), kQ));
    }
  }
}

TEST(SimdOps, SeedUnpackingAndErrorSamplingMatchTheirSpecification) {
  if (!fhe::detail::cpu_has_avx512_vbmi_popcnt()) GTEST_SKIP() << "no AVX-512 VBMI/VPOPCNTDQ";
  std::mt19937_64 g(5);
  const size_t n = 1000 + 3;
  std::vector<uint8_t> bytes(6 * n + 16);
  for (auto& x : bytes) x = static_cast<uint8_t>(g());
  std::vector<uint64_t> out(n);
  const uint64_t q = uint64_t{1} << 47;  // about half the words are out of range
  const uint64_t bad = fhe::detail::unpack48_avx512(bytes.data(), n, out.data(), q);
  bool any = false;
  for (size_t i = 0; i < n; ++i) {
    uint64_t w = 0;
    for (int k = 5; k >= 0; --k) w = (w << 8) | bytes[6 * i + k];
    ASSERT_EQ(out[i], w);
    any |= w >= q;
  }
  EXPECT_EQ(bad != 0, any);
  EXPECT_EQ(fhe::detail::unpack48_avx512(bytes.data(), n, out.data(), uint64_t{1} << 48), 0u);

  std::vector<uint64_t> words(16 * 7);
  for (auto& w : words) w = g();
  std::vector<int64_t> s(24 * 7);
  const uint32_t eta = 21;
  fhe::detail::cbd_blocks_avx512(words.data(), 7, eta, s.data());
  const uint64_t m = (uint64_t{1} << eta) - 1;
  auto pc = [](uint64_t v) { return static_cast<int64_t>(__builtin_popcountll(v)); };
  for (size_t k = 0; k < 7; ++k) {
    const uint64_t* w = words.data() + 16 * k;
    for (int i = 0; i < 8; ++i) {
      ASSERT_EQ(s[24 * k + i], pc(w[i] & m) - pc((w[i] >> eta) & m));
      ASSERT_EQ(s[24 * k + 8 + i], pc(w[8 + i] & m) - pc((w[8 + i] >> eta) & m));
      ASSERT_EQ(s[24 * k + 16 + i], pc((w[i] >> 42) & m) - pc((w[8 + i] >> 42) & m));
    }
  }
}

}  // namespace
