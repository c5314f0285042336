#include "fhe/ntt.h"

#include <gtest/gtest.h>

#include <random>
#include <vector>

#include "fhe/modarith.h"
#include "fhe/params.h"

namespace {

// Test data only (not cryptographic): a fixed-seed generator makes failures reproducible.
std::vector<uint64_t> random_poly(size_t n, uint64_t q, uint64_t seed) {
  std::mt19937_64 g(seed);
  std::vector<uint64_t> a(n);
  for (auto& v : a) v = g() % q;
  return a;
}

std::vector<uint64_t> negacyclic_schoolbook(const std::vector<uint64_t>& a,
                                            const std::vector<uint64_t>& b, uint64_t q) {
  const size_t n = a.size();
  std::vector<uint64_t> c(n, 0);
  for (size_t i = 0; i < n; ++i) {
    for (size_t j = 0; j < n; ++j) {
      const uint64_t p = fhe::mul_mod(a[i], b[j], q);
      const size_t k = i + j;
      if (k < n) {
        c[k] = fhe::add_mod(c[k], p, q);
      } else {
        c[k - n] = fhe::sub_mod(c[k - n], p, q);
      }
    }
  }
  return c;
}

TEST(Params, P48IsTheDesignedPrime) {
  const auto& p = fhe::Params::P48();
  EXPECT_EQ(p.q, 281474976694273ull);
  EXPECT_TRUE(fhe::is_prime_u64(p.q));
  EXPECT_EQ((p.q - 1) % (1u << 14), 0u);
  EXPECT_EQ(p.n, 2048u);
  EXPECT_THROW(fhe::Params::by_id(77), fhe::FheError);
}

TEST(Ntt, RefusesBadParameters) {
  EXPECT_THROW(fhe::Ntt(1000, fhe::Params::P48().q), fhe::FheError);
  EXPECT_THROW(fhe::Ntt(2048, 281474976694275ull), fhe::FheError);     // not prime
  EXPECT_THROW(fhe::Ntt(65536, fhe::Params::P48().q), fhe::FheError);  // q != 1 mod 2n
}

TEST(Ntt, PsiIsAPrimitive2nthRoot) {
  const auto& p = fhe::Params::P48();
  fhe::Ntt ntt(p.n, p.q);
  EXPECT_EQ(fhe::pow_mod(ntt.psi(), p.n, p.q), p.q - 1);
  EXPECT_EQ(fhe::pow_mod(ntt.psi(), 2 * p.n, p.q), 1u);
}

class NttSizes : public ::testing::TestWithParam<size_t> {};

TEST_P(NttSizes, ScalarRoundTripAndConvolution) {
  const size_t n = GetParam();
  const uint64_t q = fhe::Params::P48().q;
  fhe::Ntt ntt(n, q);
  ntt.set_path(fhe::NttPath::kScalar);
  auto a = random_poly(n, q, 1 + n), b = random_poly(n, q, 2 + n);
  auto fa = a, fb = b;
  ntt.forward(fa.data());
  ntt.forward(fb.data());
  for (auto v : fa) ASSERT_LT(v, q);
  auto back = fa;
  ntt.inverse(back.data());
  EXPECT_EQ(back, a);
  if (n <= 256) {
    std::vector<uint64_t> prod(n);
    for (size_t i = 0; i < n; ++i) prod[i] = fhe::mul_mod(fa[i], fb[i], q);
    ntt.inverse(prod.data());
    EXPECT_EQ(prod, negacyclic_schoolbook(a, b, q));
  }
}

TEST_P(NttSizes, AllPathsAgreeWordForWord) {
  const size_t n = GetParam();
  const uint64_t q = fhe::Params::P48().q;
  fhe::Ntt ntt(n, q);
  for (auto path : {fhe::NttPath::kAvx512Ifma}) {
    if (!fhe::Ntt::path_available(path, n)) {
      GTEST_SKIP() << fhe::to_string(path) << " not available on this CPU for n=" << n;
    }
    for (uint64_t seed = 0; seed < 4; ++seed) {
      auto a = random_poly(n, q, seed * 7919 + n);
      if (seed == 3) {  // extremes
        for (size_t i = 0; i < n; ++i) a[i] = (i % 3 == 0) ? q - 1 : (i % 3 == 1 ? 0 : q - 2);
      }
      auto s = a, v = a;
      ntt.forward_scalar(s.data());
      ntt.set_path(path);
      ntt.forward(v.data());
      ASSERT_EQ(v, s) << "forward differs on path " << fhe::to_string(path);
      ntt.inverse(v.data());
      ntt.inverse_scalar(s.data());
      ASSERT_EQ(v, s) << "inverse differs on path " << fhe::to_string(path);
      ASSERT_EQ(v, a);
      ntt.set_path(fhe::NttPath::kScalar);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Sizes, NttSizes, ::testing::Values(4, 16, 32, 64, 256, 2048, 8192));

}  // namespace
