#include "privacy/rdp.h"

#include <cmath>
#include <limits>
#include <string>

#include "format.h"
#include "privacy/error.h"
#include "privacy/log_space.h"

namespace privacy {
namespace {

using internal::format_number;

constexpr double kInf = std::numeric_limits<double>::infinity();

// The fractional-order series stops once a term drops below exp(-30), as Opacus's does; this
// only guards against a series that would not (it needs about 3e5 terms at sigma = 1e4).
constexpr int64_t kMaxSeriesTerms = 50'000'000;

// log(A_alpha) for integer alpha: log sum_{i=0}^{alpha} C(alpha, i) q^i (1-q)^(alpha-i)
// exp((i^2 - i) / (2 sigma^2)). Opacus's _compute_log_a_int.
double log_a_int(double q, double sigma, int64_t alpha) {
  const double log_q = std::log(q);
  const double log_1mq = std::log1p(-q);  // Opacus: log(1 - q), which loses digits for tiny q
  const double two_sigma2 = 2 * (sigma * sigma);
  double log_a = -kInf;
  double log_binom = 0;  // log C(alpha, i), updated incrementally
  for (int64_t i = 0; i <= alpha; ++i) {
    if (i > 0)
      log_binom += std::log(static_cast<double>(alpha - i + 1)) - std::log(static_cast<double>(i));
    const double log_coef =
        log_binom + static_cast<double>(i) * log_q + static_cast<double>(alpha - i) * log_1mq;
    const double s = log_coef + static_cast<double>(i * i - i) / two_sigma2;
    log_a = log_add(log_a, s);
  }
  return log_a;
}

// log(A_alpha) for fractional alpha: the series of Mironov et al. 2019 (section 3.3), split at
// z0 into two sums with erfc tails. Opacus's _compute_log_a_frac.
double log_a_frac(double q, double sigma, double alpha) {
  const double sigma2 = sigma * sigma;
  const double two_sigma2 = 2 * sigma2;
  double z0 = sigma2 * std::log(1 / q - 1) + 0.5;
  // For q within an ulp of 1, 1/q - 1 rounds to 0; log((1-q)/q) is the same quantity.
  if (!std::isfinite(z0)) z0 = sigma2 * (std::log1p(-q) - std::log(q)) + 0.5;
  const double log_q = std::log(q);
  const double log_1mq = std::log1p(-q);  // Opacus: log(1 - q), which loses digits for tiny q
  const double sqrt2_sigma = std::sqrt(2.0) * sigma;
  const double log_half = std::log(0.5);

  double log_a0 = -kInf;
  double log_a1 = -kInf;
  double log_abs_binom = 0;  // log |C(alpha, i)|, updated incrementally
  bool binom_positive = true;
  for (int64_t i = 0;; ++i) {
    if (i > 0) {
      const double factor = alpha - static_cast<double>(i - 1);  // C(a, i) = C(a, i-1) (a-i+1)/i
      log_abs_binom += std::log(std::fabs(factor)) - std::log(static_cast<double>(i));
      if (factor < 0) binom_positive = !binom_positive;
    }
    const double di = static_cast<double>(i);
    const double j = alpha - di;
    const double log_t0 = log_abs_binom + di * log_q + j * log_1mq;
    const double log_t1 = log_abs_binom + j * log_q + di * log_1mq;
    const double log_e0 = log_half + log_erfc((di - z0) / sqrt2_sigma);
    const double log_e1 = log_half + log_erfc((z0 - j) / sqrt2_sigma);
    const double log_s0 = log_t0 + static_cast<double>(i * i - i) / two_sigma2 + log_e0;
    const double log_s1 = log_t1 + (j * j - j) / two_sigma2 + log_e1;
    // A term beyond double range (sigma so small that exp((i^2 - i) / (2 sigma^2)) overflows)
    // makes A_alpha, and the RDP, infinite.
    if (log_s0 == kInf || log_s1 == kInf) return kInf;
    if (std::isnan(log_s0) || std::isnan(log_s1)) {
      throw PrivacyError("RDP series is not a number at order " + format_number(alpha) +
                  " (q=" + format_number(q) + ", sigma=" + format_number(sigma) + ")");
    }
    if (binom_positive) {
      log_a0 = log_add(log_a0, log_s0);
      log_a1 = log_add(log_a1, log_s1);
    } else {
      log_a0 = log_sub(log_a0, log_s0);
      log_a1 = log_sub(log_a1, log_s1);
    }
    if (std::fmax(log_s0, log_s1) < -30) break;
    if (i >= kMaxSeriesTerms) {
      throw PrivacyError("RDP series did not converge at order " + format_number(alpha) +
                  " (q=" + format_number(q) + ", sigma=" + format_number(sigma) + ")");
    }
  }
  return log_add(log_a0, log_a1);
}

}  // namespace

const std::vector<double>& default_orders() {
  static const std::vector<double> orders = [] {
    std::vector<double> v;
    for (int x = 1; x < 100; ++x) v.push_back(1 + x / 10.0);
    for (int a = 12; a < 64; ++a) v.push_back(a);
    return v;
  }();
  return orders;
}

void check_sampling_rate(double q) {
  if (!(q >= 0 && q <= 1))
    throw PrivacyError("sampling rate q must be in [0, 1], got " + format_number(q));
}

void check_noise_multiplier(double sigma) {
  if (!(sigma > 0 && std::isfinite(sigma))) {
    throw PrivacyError("noise multiplier sigma must be finite and > 0, got " + format_number(sigma));
  }
}

void check_delta(double delta) {
  if (!(delta > 0 && delta < 1))
    throw PrivacyError("delta must be in (0, 1), got " + format_number(delta));
}

void check_orders(std::span<const double> orders) {
  if (orders.empty()) throw PrivacyError("the list of RDP orders is empty");
  for (double a : orders) {
    if (!(a > 1 && std::isfinite(a)))
      throw PrivacyError("RDP orders must be finite and > 1, got " + format_number(a));
  }
}

double rdp_per_step(double q, double sigma, double order) {
  check_sampling_rate(q);
  check_noise_multiplier(sigma);
  if (!(order > 1 && std::isfinite(order))) {
    throw PrivacyError("RDP orders must be finite and > 1, got " + format_number(order));
  }
  if (q == 0) return 0;
  // Beyond the range of sigma^2 the limits are exact to double precision: no noise at all (sigma^2
  // underflows) is no privacy, and overwhelming noise (sigma^2 overflows) costs nothing.
  const double sigma2 = sigma * sigma;
  if (sigma2 == 0) return kInf;
  if (std::isinf(sigma2)) return 0;
  if (q == 1) return order / (2 * sigma2);
  double log_a;
  if (std::floor(order) == order && order <= 1e9) {
    log_a = log_a_int(q, sigma, static_cast<int64_t>(order));
  } else {
    log_a = log_a_frac(q, sigma, order);
  }
  return log_a / (order - 1);
}

std::vector<double> compute_rdp(double q, double sigma, int64_t steps,
                                std::span<const double> orders) {
  check_sampling_rate(q);
  check_noise_multiplier(sigma);
  check_orders(orders);
  if (steps < 0) throw PrivacyError("steps must be >= 0, got " + std::to_string(steps));
  std::vector<double> rdp;
  rdp.reserve(orders.size());
  if (steps == 0) {  // nothing released, even where one step would cost infinitely much
    rdp.assign(orders.size(), 0.0);
    return rdp;
  }
  for (double a : orders) rdp.push_back(rdp_per_step(q, sigma, a) * static_cast<double>(steps));
  return rdp;
}

PrivacySpent privacy_spent(std::span<const double> orders, std::span<const double> rdp,
                           double delta) {
  check_orders(orders);
  check_delta(delta);
  if (orders.size() != rdp.size()) {
    throw PrivacyError("RDP curve has " + std::to_string(rdp.size()) + " values for " +
                std::to_string(orders.size()) + " orders");
  }
  const double log_delta = std::log(delta);
  PrivacySpent best{kInf, std::numeric_limits<double>::quiet_NaN()};
  bool found = false;
  for (size_t k = 0; k < orders.size(); ++k) {
    const double a = orders[k];
    const double eps = rdp[k] - (log_delta + std::log(a)) / (a - 1) + std::log((a - 1) / a);
    if (std::isnan(eps)) continue;
    if (!found || eps < best.epsilon) {
      best = {eps, a};
      found = true;
    }
  }
  if (found && best.epsilon < 0) best.epsilon = 0;
  return best;
}

}  // namespace privacy
