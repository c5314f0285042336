#include "privacy/dp_sgd.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>

#include "privacy/error.h"

namespace {

double norm(const std::vector<float>& v) {
  double s = 0;
  for (float x : v) s += static_cast<double>(x) * x;
  return std::sqrt(s);
}

std::vector<float> random_vector(size_t n, double scale, uint64_t seed) {
  std::mt19937_64 g(seed);  // test data only, not noise
  std::normal_distribution<double> d(0.0, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = static_cast<float>(d(g));
  return v;
}

TEST(Clip, EveryClippedNormIsAtMostC) {
  for (double c : {1e-3, 0.5, 1.0, 3.0}) {
    for (uint64_t seed = 0; seed < 50; ++seed) {
      auto v = random_vector(257, 0.1 + seed * 0.2, seed);
      const double before = norm(v);
      const double reported = privacy::clip_to_norm(v, c);
      EXPECT_NEAR(reported, before, 1e-9 * before);
      EXPECT_LE(norm(v), c) << "c=" << c << " seed=" << seed;
      if (before <= c) {
        EXPECT_EQ(norm(v), before);  // untouched below the norm
      }
    }
  }
  auto v = random_vector(10, 5.0, 1);
  const auto copy = v;
  privacy::clip_to_norm(v, std::numeric_limits<double>::infinity());
  EXPECT_EQ(v, copy);
}

TEST(DpSgdStep, ClipsEachExampleAndDividesByTheExpectedBatch) {
  const size_t dim = 64;
  privacy::DpSgdStep step(dim, {.clip = 1.0, .sigma = 0.0, .expected_batch = 4.0});
  std::vector<double> expect(dim, 0.0);
  for (uint64_t i = 0; i < 6; ++i) {
    auto g = random_vector(dim, 1.0, 100 + i);  // norm ~8: always clipped
    const double n = norm(g);
    step.add_example(g);
    for (size_t k = 0; k < dim; ++k) expect[k] += g[k] / n;
  }
  privacy::GaussianNoise noise;
  const auto out = step.finish(noise);
  for (size_t k = 0; k < dim; ++k) EXPECT_NEAR(out[k], expect[k] / 4.0, 1e-6);
  EXPECT_EQ(step.examples(), 6u);
  EXPECT_GT(step.max_norm(), 1.0);
}

TEST(DpSgdStep, WithoutNoiseAndClippingItIsThePlainAverage) {
  const size_t dim = 33;
  privacy::DpSgdStep step(
      dim, {.clip = std::numeric_limits<double>::infinity(), .sigma = 0.0, .expected_batch = 3.0});
  std::vector<float> sum(dim, 0.0f);
  std::vector<std::vector<float>> gs;
  for (uint64_t i = 0; i < 3; ++i) gs.push_back(random_vector(dim, 2.0, i));
  for (const auto& g : gs) step.add_example(g);
  privacy::GaussianNoise noise;
  const auto out = step.finish(noise);
  for (size_t k = 0; k < dim; ++k) {
    // The same sum in double, divided once: the exact value a non-DP step computes.
    const double s = static_cast<double>(gs[0][k]) + gs[1][k] + gs[2][k];
    EXPECT_EQ(out[k], static_cast<float>(s / 3.0));
  }
}

TEST(GaussianNoise, HasTheRequestedStandardDeviation) {
  privacy::GaussianNoise noise;
  const int n = 200000;
  for (double sd : {0.5, 2.0}) {
    double sum = 0, sq = 0, fourth = 0;
    int beyond3 = 0;
    for (int i = 0; i < n; ++i) {
      const double x = noise.sample(sd);
      sum += x;
      sq += x * x;
      fourth += x * x * x * x;
      beyond3 += std::fabs(x) > 3 * sd;
    }
    const double mean = sum / n, var = sq / n - mean * mean;
    // Standard errors: mean sd/sqrt(n) ~ 0.0022 sd, variance sd^2 sqrt(2/n) ~ 0.0032 sd^2.
    EXPECT_NEAR(mean, 0.0, 0.015 * sd);
    EXPECT_NEAR(std::sqrt(var), sd, 0.01 * sd);
    EXPECT_NEAR(fourth / n / (var * var), 3.0, 0.1);  // Gaussian kurtosis
    EXPECT_NEAR(beyond3 / static_cast<double>(n), 0.0027, 0.0007);
  }
}

TEST(DpSgdStep, AddsNoiseOfStdSigmaTimesCOverTheExpectedBatch) {
  const size_t dim = 20000;
  privacy::DpSgdStep step(dim, {.clip = 2.0, .sigma = 1.5, .expected_batch = 10.0});
  privacy::GaussianNoise noise;
  const auto out = step.finish(noise);  // no examples: pure noise
  double sq = 0;
  for (float x : out) sq += static_cast<double>(x) * x;
  EXPECT_NEAR(std::sqrt(sq / dim), 1.5 * 2.0 / 10.0, 0.01 * 0.3 * 3);
}

TEST(DpSgdStep, RefusesBadConfigurationsAndGradients) {
  EXPECT_THROW(privacy::DpSgdStep(4, {.clip = 0.0}), privacy::PrivacyError);
  EXPECT_THROW(privacy::DpSgdStep(4, {.clip = 1.0, .sigma = -1.0}), privacy::PrivacyError);
  EXPECT_THROW(privacy::DpSgdStep(4, {.clip = 1.0, .sigma = 1.0, .expected_batch = 0.0}),
               privacy::PrivacyError);
  privacy::DpSgdStep step(4, {.clip = 1.0, .sigma = 1.0, .expected_batch = 2.0});
  EXPECT_THROW(step.add_example(std::vector<float>(3, 0.0f)), privacy::PrivacyError);
  EXPECT_THROW(step.add_example(std::vector<float>{1, NAN, 0, 0}), privacy::PrivacyError);
}

TEST(ParticipantDp, ClipsTheDeltaAndAddsNoise) {
  privacy::GaussianNoise noise;
  auto delta = random_vector(5000, 1.0, 7);  // norm ~70
  privacy::clip_and_noise_delta(delta, 1.0, 0.0, noise);
  EXPECT_LE(norm(delta), 1.0);
  EXPECT_GT(norm(delta), 0.999);
  const auto clipped = delta;
  privacy::clip_and_noise_delta(delta, 1.0, 0.5, noise);
  double sq = 0;
  for (size_t i = 0; i < delta.size(); ++i) {
    const double d = delta[i] - clipped[i];
    sq += d * d;
  }
  EXPECT_NEAR(std::sqrt(sq / delta.size()), 0.5, 0.03);
  EXPECT_THROW(privacy::clip_and_noise_delta(delta, 0.0, 1.0, noise), privacy::PrivacyError);
}

}  // namespace
