#include "privacy/log_space.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <numbers>

#include "privacy/error.h"

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

TEST(LogSpace, AddMatchesLinearSpace) {
  EXPECT_NEAR(privacy::log_add(std::log(2.0), std::log(3.0)), std::log(5.0), 1e-15);
  EXPECT_NEAR(privacy::log_add(std::log(1e-300), std::log(1e-300)), std::log(2e-300), 1e-12);
  EXPECT_EQ(privacy::log_add(-kInf, 1.5), 1.5);
  EXPECT_EQ(privacy::log_add(1.5, -kInf), 1.5);
  // Far beyond double range in linear space: exp(1000) + exp(1000) = 2 exp(1000).
  EXPECT_NEAR(privacy::log_add(1000.0, 1000.0), 1000.0 + std::log(2.0), 1e-12);
  EXPECT_TRUE(std::isnan(privacy::log_add(std::nan(""), 0.0)));
}

TEST(LogSpace, SubMatchesLinearSpace) {
  EXPECT_NEAR(privacy::log_sub(std::log(5.0), std::log(3.0)), std::log(2.0), 1e-15);
  EXPECT_EQ(privacy::log_sub(2.0, -kInf), 2.0);
  EXPECT_EQ(privacy::log_sub(2.0, 2.0), -kInf);
  EXPECT_NEAR(privacy::log_sub(1000.0, 1000.0 - std::log(2.0)), 1000.0 - std::log(2.0), 1e-12);
  // exp(x - y) overflows: the smaller term is invisible.
  EXPECT_EQ(privacy::log_sub(1000.0, -1000.0), 1000.0);
  EXPECT_THROW(privacy::log_sub(1.0, 2.0), privacy::PrivacyError);
}

TEST(LogSpace, ErfcMatchesStdWhereRepresentable) {
  for (double x : {-5.0, -1.0, 0.0, 0.3, 1.0, 4.0, 10.0, 20.0, 24.9}) {
    EXPECT_NEAR(privacy::log_erfc(x), std::log(std::erfc(x)),
                1e-13 * (1 + std::fabs(std::log(std::erfc(x)))))
        << x;
  }
}

TEST(LogSpace, ErfcAsymptoticIsContinuousAndCorrect) {
  // Either side of the switch to the asymptotic series.
  const double below = privacy::log_erfc(24.999999);
  const double above = privacy::log_erfc(25.0);
  const double slope = -2 * 25.0 - 1 / 25.0;  // d/dx log erfc(x) ~ -2x - 1/x
  EXPECT_NEAR(above - below, slope * 0.000001, 1e-9);
  // Against erfc itself while it is still a normal number.
  EXPECT_NEAR(privacy::log_erfc(26.0), std::log(std::erfc(26.0)), 1e-12 * 676);
  // Far beyond underflow: leading terms -x^2 - log(x) - log(pi)/2 - 1/(2x^2).
  const double x = 1000.0;
  const double expected = -x * x - std::log(x) - 0.5 * std::log(std::numbers::pi) - 1 / (2 * x * x);
  EXPECT_NEAR(privacy::log_erfc(x), expected, 1e-9);
  EXPECT_TRUE(std::isfinite(privacy::log_erfc(1e6)));
}

}  // namespace
