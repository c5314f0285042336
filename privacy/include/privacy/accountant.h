// The RDP accountant: composition of DP-SGD phases and the epsilon they spend.
//
// A *phase* is a run of `steps` DP-SGD steps sharing one sampling rate q and one noise
// multiplier sigma (typically one federated round of one participant). The accountant adds the
// RDP of every phase order by order and converts the total to (epsilon, delta); see
// privacy/rdp.h for the analysis. It also answers the inverse question: the smallest sigma that
// keeps a planned run within a target epsilon.
//
//   privacy::RdpAccountant acc;                 // Opacus's default orders
//   acc.add({.q = 0.01, .sigma = 1.1, .steps = 1000});
//   acc.add({.q = 0.02, .sigma = 1.5, .steps = 500});
//   privacy::PrivacySpent s = acc.spent(1e-5);  // s.epsilon, s.order
//
// The state (orders and phases) round-trips through a JSON string exactly: a reloaded
// accountant reports bit-for-bit the same epsilon. An accountant is a value; it is safe to use
// distinct ones from different threads, and one from many threads if none of them modifies it.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "privacy/error.h"
#include "privacy/rdp.h"

namespace privacy {

// `steps` steps of the Poisson-subsampled Gaussian mechanism with rate q and noise multiplier
// sigma.
struct Phase {
  double q = 0;       // sampling rate of each step, in [0, 1]
  double sigma = 0;   // noise multiplier: noise std / clipping norm, > 0
  int64_t steps = 0;  // number of steps, >= 0
};

// Throws PrivacyError (naming the offending field and value) unless q in [0, 1], sigma in (0, inf)
// and steps >= 0.
void check_phase(const Phase& phase);

class RdpAccountant {
 public:
  // An empty accountant over Opacus's default orders.
  RdpAccountant();
  // An empty accountant over the given orders (each finite and > 1); throws PrivacyError otherwise.
  explicit RdpAccountant(std::vector<double> orders);

  // Records a phase (validated with check_phase). A phase with 0 steps is ignored; one with the
  // same q and sigma as the last recorded phase extends it instead of adding an entry. Throws
  // PrivacyError, recording nothing, for an invalid phase or if the total step count would overflow.
  void add(const Phase& phase);

  const std::vector<double>& orders() const { return orders_; }
  // The recorded phases, in order.
  const std::vector<Phase>& phases() const { return phases_; }
  // Total number of steps over all phases.
  int64_t total_steps() const { return total_steps_; }

  // Total RDP at each order: the sum over phases of steps * rdp_per_step(q, sigma, order).
  std::vector<double> rdp() const;

  // The (epsilon, delta) guarantee of everything recorded, minimised over the orders; throws
  // PrivacyError unless delta is in (0, 1). With nothing recorded it is {0, 0}, as in Opacus.
  PrivacySpent spent(double delta) const;
  // spent(delta) as if `planned` had been added too; the accountant itself is unchanged.
  PrivacySpent spent_with(const Phase& planned, double delta) const;

  // The state as a JSON object: {"orders": [...], "phases": [{"q", "sigma", "steps"}, ...]}.
  std::string to_json() const;
  // Parses to_json()'s output; throws PrivacyError, saying what is wrong, for malformed or invalid input.
  static RdpAccountant from_json(std::string_view json);

 private:
  // RDP of one step of (q, sigma) at every order, computed once per distinct pair.
  const std::vector<double>& per_step(double q, double sigma);
  std::vector<double> total_rdp(const Phase* extra) const;

  std::vector<double> orders_;
  std::vector<Phase> phases_;
  int64_t total_steps_ = 0;
  std::map<std::pair<double, double>, std::vector<double>> per_step_;
};

// epsilon of a single phase at `delta` over `orders` (Opacus's compute_rdp followed by
// get_privacy_spent, i.e. with no special case for 0 steps).
PrivacySpent epsilon_for(const Phase& phase, double delta,
                         const std::vector<double>& orders = default_orders());

// Range and precision of sigma_for_epsilon's search.
struct SigmaSearch {
  double sigma_min = 0.05;
  double sigma_max = 1e4;
  double relative_tolerance = 1e-6;  // of sigma at the end of the bisection
};

// The smallest noise multiplier sigma in [sigma_min, sigma_max] for which `steps` steps at
// sampling rate q spend at most target_epsilon at `delta`, found by bisection on log(sigma) to
// `relative_tolerance`; the result always satisfies the target (it is the upper end of the final
// bracket). Returns sigma_min if that is already enough. Throws PrivacyError for invalid arguments or
// when even sigma_max exceeds the target (e.g. because delta is too small for any epsilon that
// low: with no steps at all the conversion alone costs about 0.1 at delta = 1e-5).
double sigma_for_epsilon(double q, int64_t steps, double target_epsilon, double delta,
                         const std::vector<double>& orders = default_orders(),
                         const SigmaSearch& search = {});

}  // namespace privacy
