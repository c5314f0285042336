// Participant-level DP of a round's adapter delta (participant/delta_dp.h): clipping to C_u,
// seeded replay and the noise's standard deviation (the keys of its stream: releases_test.cpp).
#include "participant/delta_dp.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "participant/releases.h"
#include "privacy/error.h"

namespace participant {
namespace {

privacy::Seed test_seed(unsigned char fill = 7) {
  privacy::Seed s{};
  for (size_t i = 0; i < s.size(); ++i) s[i] = static_cast<unsigned char>(fill + i);
  return s;
}

double norm(const std::vector<float>& v) {
  double sq = 0;
  for (const float x : v) sq += static_cast<double>(x) * x;
  return std::sqrt(sq);
}

std::vector<float> ramp(size_t n, float scale) {
  std::vector<float> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = scale * (static_cast<float>(i % 17) - 8.0f);
  return v;
}

TEST(DeltaDp, ClipsTheWholeDeltaToCWithSigmaZero) {
  for (const double clip : {0.01, 0.5, 3.0}) {
    std::vector<float> v = ramp(10007, 0.37f);
    const double before = norm(v);
    ASSERT_GT(before, clip);
    const std::vector<float> original = v;
    const DeltaDpReport r =
        privatize_delta(v, {.clip = clip, .sigma = 0}, test_seed(), kDeltaNoiseStream);
    EXPECT_TRUE(r.clipped);
    EXPECT_NEAR(r.norm, before, 1e-9 * before);
    EXPECT_EQ(r.noise_std, 0.0);
    EXPECT_LE(norm(v), clip);
    EXPECT_NEAR(norm(v), clip, 1e-5 * clip);
    // Scaled, not truncated: the direction is kept.
    for (size_t i = 0; i < v.size(); i += 97) {
      EXPECT_NEAR(v[i], original[i] * clip / before, 1e-6 * std::abs(original[i]) + 1e-12);
    }
  }
  // A delta already within the norm is left as it is.
  std::vector<float> small = ramp(100, 1e-4f);
  const std::vector<float> copy = small;
  const DeltaDpReport r = privatize_delta(small, {.clip = 1.0, .sigma = 0}, test_seed(), 5);
  EXPECT_FALSE(r.clipped);
  EXPECT_EQ(small, copy);
}

TEST(DeltaDp, ASeededRoundReplaysBitForBit) {
  const std::vector<float> delta = ramp(4096, 0.01f);
  auto run = [&](unsigned char seed_fill, uint64_t stream) {
    std::vector<float> v = delta;
    privatize_delta(v, {.clip = 0.2, .sigma = 1.3}, test_seed(seed_fill), stream);
    return v;
  };
  const std::vector<float> a = run(7, kDeltaNoiseStream);
  EXPECT_EQ(a, run(7, kDeltaNoiseStream));  // identical floats
  EXPECT_NE(a, run(7, kNoiseStream));       // another stream of the same key
  EXPECT_NE(a, run(8, kDeltaNoiseStream));  // another release's key
  EXPECT_NE(a, delta);
}

TEST(DeltaDp, NoiseHasStdSigmaTimesC) {
  // A zero delta: what comes out is the noise alone.
  const double clip = 0.25, sigma = 1.6, want = sigma * clip;
  std::vector<float> v(200000, 0.0f);
  const DeltaDpReport r =
      privatize_delta(v, {.clip = clip, .sigma = sigma}, test_seed(), kDeltaNoiseStream);
  EXPECT_DOUBLE_EQ(r.noise_std, want);
  double sum = 0, sq = 0;
  for (const float x : v) {
    sum += x;
    sq += static_cast<double>(x) * x;
  }
  const double n = static_cast<double>(v.size());
  const double mean = sum / n;
  const double sd = std::sqrt(sq / n - mean * mean);
  // Standard error of the std estimate: want / sqrt(2n) ~ 0.16%; the tolerance is 1%.
  EXPECT_NEAR(sd, want, 0.01 * want);
  EXPECT_NEAR(mean, 0.0, 5 * want / std::sqrt(n));
}

TEST(DeltaDp, RefusesBadParametersAndLeavesTheDeltaAlone) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const double inf = std::numeric_limits<double>::infinity();
  for (const DeltaDpParams p :
       {DeltaDpParams{0, 1}, DeltaDpParams{-1, 1}, DeltaDpParams{nan, 1}, DeltaDpParams{inf, 1},
        DeltaDpParams{1, -1}, DeltaDpParams{1, nan}, DeltaDpParams{1, inf}}) {
    std::vector<float> v = ramp(10, 1.0f);
    const std::vector<float> copy = v;
    EXPECT_THROW(privatize_delta(v, p, test_seed(), 1), privacy::PrivacyError);
    EXPECT_EQ(v, copy);
  }
  std::vector<float> v = ramp(10, 1.0f);
  v[3] = std::numeric_limits<float>::quiet_NaN();
  EXPECT_THROW(privatize_delta(v, {.clip = 1, .sigma = 1}, test_seed(), 1), privacy::PrivacyError);
}

}  // namespace
}  // namespace participant
