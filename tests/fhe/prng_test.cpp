#include "fhe/prng.h"

#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "fhe/params.h"

namespace {

std::vector<uint8_t> hex(const char* s) {
  std::vector<uint8_t> out;
  for (size_t i = 0; s[i] && s[i + 1]; i += 2) {
    out.push_back(static_cast<uint8_t>(std::stoi(std::string(s + i, 2), nullptr, 16)));
  }
  return out;
}

// NIST SP 800-38A, F.5.1 CTR-AES128.Encrypt: the keystream is plaintext XOR ciphertext.
std::vector<uint8_t> nist_keystream() {
  const auto p =
      hex("6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e51"
          "30c81c46a35ce411e5fbc1191a0a52eff69f2445df4f9b17ad2b417be66c3710");
  const auto c =
      hex("874d6191b620e3261bef6864990db6ce9806f66b7970fdff8617187bb9fffdff"
          "5ae4df3edbd5d35e5b4f09020db03eab1e031dda2fbe03d1792170a0f3009cee");
  std::vector<uint8_t> k(p.size());
  for (size_t i = 0; i < p.size(); ++i) k[i] = p[i] ^ c[i];
  return k;
}

fhe::Seed nist_seed() {
  fhe::Seed s;
  const auto key = hex("2b7e151628aed2a6abf7158809cf4f3c");
  const auto ctr = hex("f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff");
  std::memcpy(s.data(), key.data(), 16);
  std::memcpy(s.data() + 16, ctr.data(), 16);
  return s;
}

uint64_t le48(const uint8_t* b) {
  uint64_t w = 0;
  for (int i = 5; i >= 0; --i) w = (w << 8) | b[i];
  return w;
}

TEST(AesCtr, MatchesNistSp800_38A) {
  const auto seed = nist_seed();
  fhe::AesCtr ctr;
  ctr.reset(seed.data(), seed.data() + 16);
  std::vector<uint8_t> ks(64);
  ctr.keystream(ks.data(), 32);
  ctr.keystream(ks.data() + 32, 32);  // the stream continues across calls
  EXPECT_EQ(ks, nist_keystream());
}

TEST(SeedExpander, Row0IsTheNistKeystreamIn48BitWords) {
  const auto& p = fhe::Params::P48();
  fhe::SeedExpander ex(nist_seed(), p.n, p.q);
  std::vector<uint64_t> row(p.n);
  ex.expand_row(0, row.data());
  const auto ks = nist_keystream();
  for (size_t k = 0; k < 10; ++k) {
    const uint64_t w = le48(ks.data() + 6 * k);
    ASSERT_LT(w, p.q);
    EXPECT_EQ(row[k], w) << "word " << k;
  }
  // Known answer of the first word, written out.
  EXPECT_EQ(row[0], 0x609873df8cecull);
  for (auto v : row) ASSERT_LT(v, p.q);
}

TEST(SeedExpander, RowsUseDisjointCountersAndRejectOutOfRangeWords) {
  // With a modulus of 2^47 about half of all 48-bit words are rejected; row r must be exactly the
  // accepted words of the keystream starting at counter + r * 2^32.
  const uint64_t q = uint64_t{1} << 47;
  const size_t n = 64;
  auto seed = nist_seed();
  fhe::SeedExpander ex(seed, n, q);
  for (uint64_t r : {0ull, 1ull, 5ull}) {
    std::vector<uint64_t> row(n);
    ex.expand_row(r, row.data());
    uint8_t counter[16];
    std::memcpy(counter, seed.data() + 16, 16);
    // add r * 2^32 to the big-endian counter
    unsigned carry = 0;
    uint64_t add = r << 32;
    for (int i = 15; i >= 0; --i) {
      const unsigned v = counter[i] + static_cast<unsigned>(add & 0xff) + carry;
      counter[i] = static_cast<uint8_t>(v);
      carry = v >> 8;
      add >>= 8;
    }
    fhe::AesCtr ctr;
    ctr.reset(seed.data(), counter);
    std::vector<uint8_t> ks(6 * 4 * n);
    ctr.keystream(ks.data(), ks.size());
    std::vector<uint64_t> expect;
    size_t rejected = 0;
    for (size_t k = 0; expect.size() < n; ++k) {
      const uint64_t w = le48(ks.data() + 6 * k);
      if (w < q) {
        expect.push_back(w);
      } else {
        ++rejected;
      }
    }
    EXPECT_EQ(row, expect) << "row " << r;
    EXPECT_GT(rejected, 0u);
  }
}

TEST(Csprng, CentredBinomialHasTheRightMomentsAndRange) {
  fhe::Csprng rng;
  const size_t n = 200000;
  std::vector<int64_t> e(n);
  rng.centered_binomial(e.data(), n, 21);
  double sum = 0, sq = 0;
  for (auto v : e) {
    ASSERT_LE(v, 21);
    ASSERT_GE(v, -21);
    sum += v;
    sq += static_cast<double>(v) * v;
  }
  const double mean = sum / n, var = sq / n - mean * mean;
  EXPECT_NEAR(mean, 0.0, 0.05);  // sd of the mean ~ 0.007
  EXPECT_NEAR(var, 10.5, 0.25);  // eta / 2
}

TEST(Csprng, TernaryIsUniformAndTwoStreamsDiffer) {
  fhe::Csprng a, b;
  std::vector<int8_t> x(90000), y(90000);
  a.ternary(x.data(), x.size());
  b.ternary(y.data(), y.size());
  EXPECT_NE(x, y);
  int counts[3] = {0, 0, 0};
  for (auto v : x) {
    ASSERT_GE(v, -1);
    ASSERT_LE(v, 1);
    ++counts[v + 1];
  }
  for (int c : counts) EXPECT_NEAR(c, 30000, 600);
}

}  // namespace
