// The RDP analysis against independent computations: the Gaussian closed form (q = 1), the
// binomial sum in linear space (integer orders), numerical integration of A_alpha (fractional
// orders), and limits where only log-space arithmetic survives.
#include "privacy/rdp.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <numbers>
#include <vector>

#include "privacy/error.h"

namespace {

double rel_err(double got, double want) {
  return std::fabs(got - want) / std::fabs(want);
}

// A_alpha = E_{z ~ N(0, sigma^2)} [((1 - q) + q exp((2z - 1) / (2 sigma^2)))^alpha], by the
// trapezoidal rule on a wide, fine grid (spectrally accurate for this smooth, fast-decaying
// integrand), summed in log space. Returns log(A_alpha).
double log_a_by_quadrature(double q, double sigma, double alpha) {
  const double lo = -20 * sigma - 2;
  const double hi = alpha + 20 * sigma + 2;
  const int n = 40000;
  const double h = (hi - lo) / n;
  const double s2 = sigma * sigma;
  // log of the integrand at z; the maximum is used to keep the sum in range.
  auto log_f = [&](double z) {
    const double log_phi = -z * z / (2 * s2) - std::log(sigma * std::sqrt(2 * std::numbers::pi));
    const double x = (2 * z - 1) / (2 * s2);
    // log((1 - q) + q e^x), stably.
    const double a = std::log1p(-q);
    const double b = std::log(q) + x;
    const double m = std::max(a, b);
    return log_phi + alpha * (m + std::log(std::exp(a - m) + std::exp(b - m)));
  };
  double peak = -std::numeric_limits<double>::infinity();
  for (int k = 0; k <= n; ++k) peak = std::max(peak, log_f(lo + k * h));
  long double sum = 0;
  for (int k = 0; k <= n; ++k) {
    const long double w = (k == 0 || k == n) ? 0.5L : 1.0L;
    sum += w * std::exp(static_cast<long double>(log_f(lo + k * h) - peak));
  }
  return peak + std::log(static_cast<double>(sum * h));
}

// log(A_alpha) for integer alpha as the plain binomial sum, in long double.
double log_a_by_binomial_sum(double q, double sigma, int alpha) {
  long double sum = 0;
  long double binom = 1;
  for (int i = 0; i <= alpha; ++i) {
    if (i > 0) binom = binom * (alpha - i + 1) / i;
    sum += binom * std::pow(static_cast<long double>(q), i) *
           std::pow(1.0L - static_cast<long double>(q), alpha - i) *
           std::exp(static_cast<long double>(i * i - i) / (2.0L * sigma * sigma));
  }
  return static_cast<double>(std::log(sum));
}

TEST(Rdp, DefaultOrdersAreOpacusDefaultAlphas) {
  const std::vector<double>& orders = privacy::default_orders();
  ASSERT_EQ(orders.size(), 151u);
  EXPECT_EQ(orders.front(), 1.1);
  EXPECT_EQ(orders[9], 2.0);
  EXPECT_EQ(orders[98], 10.9);
  EXPECT_EQ(orders[99], 12.0);
  EXPECT_EQ(orders.back(), 63.0);
  for (size_t k = 1; k < orders.size(); ++k) EXPECT_LT(orders[k - 1], orders[k]);
}

TEST(Rdp, SpecialCases) {
  EXPECT_EQ(privacy::rdp_per_step(0.0, 1.0, 2.5), 0.0);
  // q = 1 is the Gaussian mechanism: alpha / (2 sigma^2).
  EXPECT_DOUBLE_EQ(privacy::rdp_per_step(1.0, 2.0, 3.0), 3.0 / 8.0);
  EXPECT_DOUBLE_EQ(privacy::rdp_per_step(1.0, 0.5, 1.7), 1.7 / 0.5);
}

TEST(Rdp, IntegerOrdersMatchTheBinomialSum) {
  for (double q : {0.001, 0.01, 0.1, 0.5, 0.9}) {
    for (double sigma : {0.7, 1.0, 2.0, 5.0}) {
      for (int alpha : {2, 3, 5, 12, 32}) {
        const double want = log_a_by_binomial_sum(q, sigma, alpha) / (alpha - 1);
        const double got = privacy::rdp_per_step(q, sigma, alpha);
        EXPECT_LT(rel_err(got, want), 1e-10)
            << "q=" << q << " sigma=" << sigma << " alpha=" << alpha;
      }
    }
  }
}

TEST(Rdp, FractionalOrdersMatchNumericalIntegration) {
  for (double q : {0.05, 0.2, 0.5}) {
    for (double sigma : {0.8, 1.5, 4.0}) {
      for (double alpha : {1.1, 1.5, 2.5, 7.3, 10.9}) {
        const double want = log_a_by_quadrature(q, sigma, alpha) / (alpha - 1);
        const double got = privacy::rdp_per_step(q, sigma, alpha);
        EXPECT_LT(rel_err(got, want), 1e-7)
            << "q=" << q << " sigma=" << sigma << " alpha=" << alpha;
      }
    }
  }
}

TEST(Rdp, IntegerOrdersAlsoMatchNumericalIntegration) {
  // Ties the two branches together: the integral does not care whether alpha is an integer.
  for (double alpha : {2.0, 3.0, 8.0}) {
    const double want = log_a_by_quadrature(0.1, 1.2, alpha) / (alpha - 1);
    EXPECT_LT(rel_err(privacy::rdp_per_step(0.1, 1.2, alpha), want), 1e-7) << alpha;
  }
}

TEST(Rdp, ContinuousAcrossIntegerOrders) {
  // The fractional series just beside an integer order approaches the exact integer sum.
  for (double q : {0.01, 0.3}) {
    for (double alpha : {2.0, 5.0, 12.0}) {
      const double at = privacy::rdp_per_step(q, 1.3, alpha);
      const double below = privacy::rdp_per_step(q, 1.3, alpha - 1e-7);
      const double above = privacy::rdp_per_step(q, 1.3, alpha + 1e-7);
      EXPECT_LT(below, at);
      EXPECT_GT(above, at);
      EXPECT_LT(rel_err(below, at), 1e-5);
      EXPECT_LT(rel_err(above, at), 1e-5);
    }
  }
}

TEST(Rdp, ComputeRdpScalesWithSteps) {
  const std::vector<double> orders = {1.5, 2.0, 10.0, 32.5};
  const std::vector<double> one = privacy::compute_rdp(0.02, 1.1, 1, orders);
  const std::vector<double> many = privacy::compute_rdp(0.02, 1.1, 12345, orders);
  const std::vector<double> none = privacy::compute_rdp(0.02, 1.1, 0, orders);
  for (size_t k = 0; k < orders.size(); ++k) {
    EXPECT_GT(one[k], 0);
    EXPECT_EQ(many[k], one[k] * 12345);
    EXPECT_EQ(none[k], 0);
  }
  // RDP grows with the order (it is non-decreasing in alpha).
  for (size_t k = 1; k < orders.size(); ++k) EXPECT_GT(one[k], one[k - 1]);
}

TEST(Rdp, PrivacySpentIsTheBalleConversionMinimisedOverOrders) {
  const std::vector<double> orders = {2.0, 4.0, 8.0};
  const std::vector<double> rdp = {0.5, 0.8, 3.0};
  const double delta = 1e-5;
  double best = std::numeric_limits<double>::infinity();
  double best_order = 0;
  for (size_t k = 0; k < orders.size(); ++k) {
    const double a = orders[k];
    const double eps = rdp[k] - (std::log(delta) + std::log(a)) / (a - 1) + std::log((a - 1) / a);
    if (eps < best) {
      best = eps;
      best_order = a;
    }
  }
  const privacy::PrivacySpent s = privacy::privacy_spent(orders, rdp, delta);
  EXPECT_DOUBLE_EQ(s.epsilon, best);
  EXPECT_EQ(s.order, best_order);
  EXPECT_EQ(best_order, 4.0);  // the example is built so that the middle order wins
}

TEST(Rdp, PrivacySpentIgnoresNaN) {
  const std::vector<double> orders = {2.0, 4.0};
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const privacy::PrivacySpent s =
      privacy::privacy_spent(orders, std::vector<double>{nan, 0.8}, 1e-5);
  EXPECT_EQ(s.order, 4.0);
  const privacy::PrivacySpent all_nan =
      privacy::privacy_spent(orders, std::vector<double>{nan, nan}, 1e-5);
  EXPECT_TRUE(std::isinf(all_nan.epsilon));
  EXPECT_TRUE(std::isnan(all_nan.order));
}

TEST(Rdp, PrivacySpentIsNeverNegative) {
  // delta close to 1 with no RDP makes the Balle bound negative; 0 is reported instead.
  const std::vector<double> orders = {2.0, 63.0};
  EXPECT_EQ(privacy::privacy_spent(orders, std::vector<double>{0.0, 0.0}, 0.9).epsilon, 0.0);
}

TEST(Rdp, StableInExtremeRegimes) {
  const std::vector<double>& orders = privacy::default_orders();
  for (double sigma : {0.05, 0.3, 1.0, 100.0, 1e4}) {
    for (double q : {1e-9, 1e-6, 0.5, 1 - 1e-12}) {
      const std::vector<double> rdp = privacy::compute_rdp(q, sigma, 10'000'000, orders);
      for (size_t k = 0; k < orders.size(); ++k) {
        ASSERT_TRUE(std::isfinite(rdp[k]))
            << "q=" << q << " sigma=" << sigma << " alpha=" << orders[k];
        // Tiny negative values would be rounding noise of an RDP that is essentially 0.
        ASSERT_GT(rdp[k], -1e-9) << "q=" << q << " sigma=" << sigma << " alpha=" << orders[k];
      }
      const privacy::PrivacySpent s = privacy::privacy_spent(orders, rdp, 1e-5);
      EXPECT_TRUE(std::isfinite(s.epsilon)) << "q=" << q << " sigma=" << sigma;
      EXPECT_GT(s.epsilon, 0) << "q=" << q << " sigma=" << sigma;
    }
  }
}

TEST(Rdp, LimitsOfTheNoiseMultiplier) {
  // sigma^2 underflows, or exp((i^2 - i) / (2 sigma^2)) overflows: no privacy at all.
  for (double sigma : {1e-300, 1e-160}) {
    EXPECT_EQ(privacy::rdp_per_step(0.5, sigma, 2.0), std::numeric_limits<double>::infinity());
    EXPECT_EQ(privacy::rdp_per_step(0.5, sigma, 2.5), std::numeric_limits<double>::infinity());
  }
  // Tiny but representable: log space keeps the huge RDP exact. At order 2,
  // A = (1-q)^2 + 2q(1-q) + q^2 e^{1/sigma^2}, so rdp = log(A) ~ 1/sigma^2 + 2 log(q).
  EXPECT_NEAR(privacy::rdp_per_step(0.5, 1e-3, 2.0), 1e6 + 2 * std::log(0.5), 1e-12 * 1e6);
  EXPECT_TRUE(std::isfinite(privacy::rdp_per_step(0.5, 1e-3, 2.5)));
  EXPECT_GT(privacy::rdp_per_step(0.5, 1e-3, 2.5), privacy::rdp_per_step(0.5, 1e-3, 2.0));
  // sigma^2 overflows: the noise drowns everything.
  EXPECT_EQ(privacy::rdp_per_step(0.5, 1e300, 2.5), 0.0);
  EXPECT_EQ(privacy::rdp_per_step(0.5, 1e300, 3.0), 0.0);
  EXPECT_EQ(privacy::rdp_per_step(1.0, 1e300, 3.0), 0.0);
  // Large but representable sigma: rdp ~ alpha q^2 / (2 sigma^2), finite and tiny.
  // (The fractional series' stopping rule, Opacus's, leaves ~1e-14 of truncation noise here.)
  EXPECT_LT(std::fabs(privacy::rdp_per_step(0.5, 1e100, 2.5)), 1e-12);
  EXPECT_GE(privacy::rdp_per_step(0.5, 1e100, 3.0), 0.0);
  EXPECT_LT(privacy::rdp_per_step(0.5, 1e100, 3.0), 1e-15);  // rounding noise of log(1 + 1e-200)
  // Zero steps of an infinitely costly step still cost nothing (not inf * 0 = NaN).
  const std::vector<double> orders = {2.0, 2.5};
  EXPECT_EQ(privacy::compute_rdp(0.5, 1e-300, 0, orders), std::vector<double>({0.0, 0.0}));
}

TEST(Rdp, TinySamplingRateFollowsTheSecondOrderExpansion) {
  // For small q, A_alpha = 1 + C(alpha, 2) q^2 (e^{1/sigma^2} - 1) + O(q^3), so
  // rdp(alpha) ~ alpha/2 * q^2 (e^{1/sigma^2} - 1). This needs log-space sums that do not
  // lose the O(q^2) part against the 1.
  const double q = 1e-6;
  for (double sigma : {0.8, 1.0, 3.0}) {
    for (double alpha : {2.0, 2.5, 8.0}) {
      const double expected = alpha / 2 * q * q * std::expm1(1 / (sigma * sigma));
      EXPECT_LT(rel_err(privacy::rdp_per_step(q, sigma, alpha), expected), 1e-3)
          << "sigma=" << sigma << " alpha=" << alpha;
    }
  }
}

TEST(Rdp, RejectsInvalidArguments) {
  const std::vector<double> orders = {2.0};
  EXPECT_THROW(privacy::rdp_per_step(-0.1, 1.0, 2.0), privacy::PrivacyError);
  EXPECT_THROW(privacy::rdp_per_step(1.1, 1.0, 2.0), privacy::PrivacyError);
  EXPECT_THROW(privacy::rdp_per_step(std::nan(""), 1.0, 2.0), privacy::PrivacyError);
  EXPECT_THROW(privacy::rdp_per_step(0.1, 0.0, 2.0), privacy::PrivacyError);
  EXPECT_THROW(privacy::rdp_per_step(0.1, -1.0, 2.0), privacy::PrivacyError);
  EXPECT_THROW(privacy::rdp_per_step(0.1, std::numeric_limits<double>::infinity(), 2.0),
               privacy::PrivacyError);
  EXPECT_THROW(privacy::rdp_per_step(0.1, 1.0, 1.0), privacy::PrivacyError);
  EXPECT_THROW(privacy::compute_rdp(0.1, 1.0, -1, orders), privacy::PrivacyError);
  EXPECT_THROW(privacy::compute_rdp(0.1, 1.0, 1, std::vector<double>{}), privacy::PrivacyError);
  EXPECT_THROW(privacy::privacy_spent(orders, std::vector<double>{1.0}, 0.0), privacy::PrivacyError);
  EXPECT_THROW(privacy::privacy_spent(orders, std::vector<double>{1.0}, 1.0), privacy::PrivacyError);
  EXPECT_THROW(privacy::privacy_spent(orders, std::vector<double>{1.0, 2.0}, 1e-5), privacy::PrivacyError);
  try {
    privacy::rdp_per_step(1.5, 1.0, 2.0);
    FAIL() << "no exception";
  } catch (const privacy::PrivacyError& e) {
    EXPECT_NE(std::string(e.what()).find("sampling rate q"), std::string::npos) << e.what();
  }
}

}  // namespace
