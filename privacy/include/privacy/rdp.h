// Renyi differential privacy (RDP) of the Poisson-subsampled Gaussian mechanism.
//
// One DP-SGD step samples each example independently with probability q (Poisson sampling),
// clips every per-example gradient to norm C, sums them and adds N(0, sigma^2 C^2) noise; sigma
// is the *noise multiplier*. Mironov, Talwar and Zhang, "Renyi Differential Privacy of the
// Sampled Gaussian Mechanism" (2019), bound the RDP of one step at order alpha > 1 by
//     rdp(alpha) = log(A_alpha) / (alpha - 1),
//     A_alpha    = E_{z ~ N(0, sigma^2)} [ ((1 - q) + q exp((2z - 1) / (2 sigma^2)))^alpha ],
// which is an exact finite binomial sum for integer alpha and a convergent two-sided series
// (with erfc tails) for fractional alpha. RDP composes by addition: `steps` identical steps
// cost steps * rdp(alpha), and phases with different (q, sigma) add order by order.
//
// An RDP curve converts to (epsilon, delta)-DP with the bound of Balle et al., "Hypothesis
// Testing Interpretations and Renyi Differential Privacy" (2020), minimised over the orders:
//     epsilon(alpha) = rdp(alpha) - (log(delta) + log(alpha)) / (alpha - 1)
//                      + log((alpha - 1) / alpha).
//
// The functions below reproduce Opacus's RDP analysis (opacus/accountants/analysis/rdp.py:
// _compute_log_a_int, _compute_log_a_frac, _compute_rdp, compute_rdp, get_privacy_spent) in log
// space, term for term, with one deliberate difference: log(1 - q) is computed as log1p(-q),
// which keeps the O(q^2) RDP of tiny sampling rates above rounding noise. On the Opacus
// reference sample epsilon agrees to 5e-12 relative. The results stay finite for q down to
// 1e-9, 1e7 steps and sigma from 0.05 to 1e4. Most callers want privacy/accountant.h instead.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace privacy {

// Opacus's DEFAULT_ALPHAS: 1.1, 1.2, ..., 10.9 (computed as 1 + x / 10.0), then the integers
// 12, 13, ..., 63; 151 orders in all.
const std::vector<double>& default_orders();

// Throws PrivacyError unless q is in [0, 1].
void check_sampling_rate(double q);
// Throws PrivacyError unless sigma is finite and > 0.
void check_noise_multiplier(double sigma);
// Throws PrivacyError unless delta is in (0, 1).
void check_delta(double delta);
// Throws PrivacyError unless every order is finite and > 1 (and there is at least one).
void check_orders(std::span<const double> orders);

// RDP of ONE step of the subsampled Gaussian mechanism at order `order` (> 1). q == 0 gives 0
// (nothing is released); q == 1 gives the plain Gaussian mechanism's order / (2 sigma^2). A sigma
// so small that the RDP exceeds double range gives +infinity (no privacy); one so large that
// sigma^2 overflows gives 0. Throws PrivacyError for q outside [0, 1], sigma not in (0, inf), or an
// order <= 1.
double rdp_per_step(double q, double sigma, double order);

// RDP of `steps` (>= 0) identical steps at each order: steps * rdp_per_step(q, sigma, order)
// (exactly 0 for 0 steps).
std::vector<double> compute_rdp(double q, double sigma, int64_t steps,
                                std::span<const double> orders);

// An (epsilon, delta) guarantee and the RDP order that gave it.
struct PrivacySpent {
  double epsilon = 0;
  double order = 0;
};

// Converts an RDP curve (rdp[k] at orders[k]) to the smallest epsilon over the orders for this
// delta, with the Balle et al. 2020 bound above; orders whose epsilon is NaN are ignored and ties
// go to the first. Unlike Opacus, a negative bound (only possible when delta is close to 1) is
// reported as 0, which is also a valid guarantee. Throws PrivacyError for mismatched lengths, a bad order
// or a delta outside (0, 1). If every order is NaN the result is {inf, NaN}, as in Opacus.
PrivacySpent privacy_spent(std::span<const double> orders, std::span<const double> rdp,
                           double delta);

}  // namespace privacy
