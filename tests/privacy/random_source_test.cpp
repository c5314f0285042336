// The CSPRNG behind DP noise and sampling: the OS mode, the seeded AES-256-CTR mode (known
// answers, reproducibility, separation of seeds and streams) and seeded Gaussian noise.
#include "privacy/random_source.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "privacy/error.h"
#include "privacy/gaussian.h"

namespace {

std::string hex(const std::vector<unsigned char>& bytes) {
  static const char* digits = "0123456789abcdef";
  std::string s;
  for (unsigned char b : bytes) {
    s += digits[b >> 4];
    s += digits[b & 15];
  }
  return s;
}

std::vector<unsigned char> take(privacy::RandomSource& source, size_t n) {
  std::vector<unsigned char> out(n);
  source.fill(out);
  return out;
}

std::vector<uint64_t> words(privacy::RandomSource& source, size_t n) {
  std::vector<uint64_t> out(n);
  for (auto& w : out) w = source();
  return out;
}

const std::string kCountingSeed =
    "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

TEST(RandomSource, SeededModeIsTheAes256CtrKeystream) {
  // Keystreams from `openssl enc -aes-256-ctr -K <seed> -iv <stream, 8 zero bytes>` over zeros;
  // the first is also the classic AES-256 all-zero known answer.
  const privacy::Seed zero{};
  privacy::RandomSource s0(zero, 0);
  EXPECT_EQ(hex(take(s0, 16)), "dc95c078a2408989ad48a21492842087");
  privacy::RandomSource s1(zero, 1);
  EXPECT_EQ(hex(take(s1, 16)), "f5956edf02bd36a401bbb6ce77c3d3fb");
  privacy::RandomSource s7(privacy::parse_seed_hex(kCountingSeed), 7);
  EXPECT_EQ(hex(take(s7, 48)),
            "3754fb01bdf925d28f8d964fce69304d0486426f0df0dfa8e09791abbb162ea0"
            "e275cd65f84287563f0eeba3038d83c5");
  EXPECT_TRUE(s7.seeded());
  // Words are the bytes read little-endian.
  privacy::RandomSource w(zero, 0);
  EXPECT_EQ(w.next_u64(), 0x898940a278c095dcull);
}

TEST(RandomSource, SeededStreamsReplayAndDifferAcrossSeedsAndStreams) {
  const privacy::Seed seed = privacy::parse_seed_hex(kCountingSeed);
  privacy::Seed other = seed;
  other[31] ^= 1;
  privacy::RandomSource a(seed, 3), b(seed, 3), c(other, 3), d(seed, 4);
  const auto wa = words(a, 5000);  // several buffer refills
  EXPECT_EQ(wa, words(b, 5000));
  const auto wc = words(c, 5000);
  const auto wd = words(d, 5000);
  int same_c = 0, same_d = 0;
  for (size_t i = 0; i < wa.size(); ++i) {
    same_c += wa[i] == wc[i];
    same_d += wa[i] == wd[i];
  }
  EXPECT_EQ(same_c, 0);
  EXPECT_EQ(same_d, 0);
}

TEST(RandomSource, FillIsTheSameStreamWhateverTheChunking) {
  const privacy::Seed seed = privacy::parse_seed_hex(kCountingSeed);
  privacy::RandomSource whole(seed, 0), pieces(seed, 0);
  const auto expected = take(whole, 5000);
  std::vector<unsigned char> got;
  for (size_t n : {1, 7, 1024, 1500, 3, 2465}) {
    const auto part = take(pieces, n);
    got.insert(got.end(), part.begin(), part.end());
  }
  EXPECT_EQ(got, expected);
}

TEST(RandomSource, OsModeIsNotReplayable) {
  privacy::RandomSource a, b;
  EXPECT_FALSE(a.seeded());
  EXPECT_NE(words(a, 16), words(b, 16));
  // Moving a source moves its stream.
  privacy::RandomSource moved(std::move(a));
  EXPECT_FALSE(moved.seeded());
  EXPECT_NE(words(moved, 4), words(b, 4));
}

TEST(RandomSource, ParseSeedHexRefusesBadInput) {
  EXPECT_EQ(privacy::parse_seed_hex(std::string(64, 'F'))[0], 0xff);
  EXPECT_THROW(privacy::parse_seed_hex(""), privacy::PrivacyError);
  EXPECT_THROW(privacy::parse_seed_hex(std::string(63, '0')), privacy::PrivacyError);
  EXPECT_THROW(privacy::parse_seed_hex(std::string(66, '0')), privacy::PrivacyError);
  EXPECT_THROW(privacy::parse_seed_hex(std::string(63, '0') + "g"), privacy::PrivacyError);
}

std::vector<double> samples(privacy::GaussianNoise& noise, size_t n, double stddev) {
  std::vector<double> out(n);
  for (auto& x : out) x = noise.sample(stddev);
  return out;
}

TEST(SeededGaussianNoise, ReplaysAndDiffersAcrossSeeds) {
  const privacy::Seed seed = privacy::parse_seed_hex(kCountingSeed);
  privacy::Seed other = seed;
  other[0] ^= 0x80;
  privacy::GaussianNoise a(privacy::RandomSource(seed, 1)), b(privacy::RandomSource(seed, 1));
  privacy::GaussianNoise c(privacy::RandomSource(other, 1)), os;
  const auto xa = samples(a, 10000, 2.0);  // more than one refill of the word buffer
  EXPECT_EQ(xa, samples(b, 10000, 2.0));
  const auto xc = samples(c, 10000, 2.0);
  const auto xo = samples(os, 10000, 2.0);
  int same_c = 0, same_o = 0;
  for (size_t i = 0; i < xa.size(); ++i) {
    same_c += xa[i] == xc[i];
    same_o += xa[i] == xo[i];
  }
  EXPECT_EQ(same_c, 0);
  EXPECT_EQ(same_o, 0);
  // The seeded samples are still N(0, 2^2): mean and std within 5 standard errors (n = 1e4).
  double sum = 0, sq = 0;
  for (double x : xa) {
    sum += x;
    sq += x * x;
  }
  const double n = static_cast<double>(xa.size());
  const double mean = sum / n;
  const double sd = std::sqrt(sq / n - mean * mean);
  EXPECT_LT(std::abs(mean), 5 * 2.0 / std::sqrt(n));
  EXPECT_LT(std::abs(sd / 2.0 - 1), 5 / std::sqrt(2 * n));
}

}  // namespace
