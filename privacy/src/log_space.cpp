#include "privacy/log_space.h"

#include <cmath>
#include <limits>
#include <numbers>
#include <string>

#include "privacy/error.h"

namespace privacy {

double log_add(double log_x, double log_y) {
  if (std::isnan(log_x) || std::isnan(log_y)) return std::numeric_limits<double>::quiet_NaN();
  const double a = log_x < log_y ? log_x : log_y;
  const double b = log_x < log_y ? log_y : log_x;
  if (a == -std::numeric_limits<double>::infinity()) return b;
  if (b == std::numeric_limits<double>::infinity()) return b;
  // Use exp(a) + exp(b) = (exp(a - b) + 1) * exp(b).
  return std::log1p(std::exp(a - b)) + b;
}

double log_sub(double log_x, double log_y) {
  if (log_x < log_y) {
    throw PrivacyError("log_sub: the difference would be negative (log_x=" + std::to_string(log_x) +
                " < log_y=" + std::to_string(log_y) + ")");
  }
  if (log_y == -std::numeric_limits<double>::infinity()) return log_x;
  if (log_x == log_y) return -std::numeric_limits<double>::infinity();
  // Use exp(x) - exp(y) = (exp(x - y) - 1) * exp(y). When exp(x - y) overflows the subtraction
  // is invisible at double precision (Opacus catches the OverflowError the same way).
  const double e = std::expm1(log_x - log_y);
  if (std::isinf(e)) return log_x;
  return std::log(e) + log_y;
}

double log_erfc(double x) {
  // erfc keeps full relative precision down to ~1e-300 (x ~ 26.2) before it becomes subnormal.
  if (x < 25.0) return std::log(std::erfc(x));
  // Asymptotic series; its terms shrink for n < x^2 (>= 625) and it is stopped at double
  // precision long before that.
  const double inv_2x2 = 1.0 / (2.0 * x * x);
  double sum = 1.0;
  double term = 1.0;
  for (int n = 1; n < 50; ++n) {
    term *= -(2.0 * n - 1.0) * inv_2x2;
    const double next = sum + term;
    if (next == sum) break;
    sum = next;
  }
  return -x * x - std::log(x) - 0.5 * std::log(std::numbers::pi) + std::log(sum);
}

}  // namespace privacy
