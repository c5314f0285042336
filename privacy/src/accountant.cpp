#include "privacy/accountant.h"

#include <cmath>
#include <nlohmann/json.hpp>
#include <string>

#include "format.h"

namespace privacy {
namespace {

using internal::format_number;

double epsilon_at(double q, double sigma, int64_t steps, double delta,
                  const std::vector<double>& orders) {
  const std::vector<double> rdp = compute_rdp(q, sigma, steps, orders);
  return privacy_spent(orders, rdp, delta).epsilon;
}

}  // namespace

void check_phase(const Phase& phase) {
  check_sampling_rate(phase.q);
  check_noise_multiplier(phase.sigma);
  if (phase.steps < 0) throw PrivacyError("steps must be >= 0, got " + std::to_string(phase.steps));
}

RdpAccountant::RdpAccountant() : orders_(default_orders()) {}

RdpAccountant::RdpAccountant(std::vector<double> orders) : orders_(std::move(orders)) {
  check_orders(orders_);
}

const std::vector<double>& RdpAccountant::per_step(double q, double sigma) {
  const auto key = std::make_pair(q, sigma);
  auto it = per_step_.find(key);
  if (it == per_step_.end()) it = per_step_.emplace(key, compute_rdp(q, sigma, 1, orders_)).first;
  return it->second;
}

void RdpAccountant::add(const Phase& phase) {
  check_phase(phase);
  if (phase.steps == 0) return;
  int64_t total = 0;
  if (__builtin_add_overflow(total_steps_, phase.steps, &total)) {
    throw PrivacyError("too many steps: " + std::to_string(total_steps_) + " recorded, " +
                std::to_string(phase.steps) + " more overflow a 64-bit count");
  }
  per_step(phase.q, phase.sigma);  // computes (and validates) before anything is recorded
  if (!phases_.empty() && phases_.back().q == phase.q && phases_.back().sigma == phase.sigma) {
    phases_.back().steps += phase.steps;
  } else {
    phases_.push_back(phase);
  }
  total_steps_ = total;
}

std::vector<double> RdpAccountant::total_rdp(const Phase* extra) const {
  std::vector<double> total(orders_.size(), 0.0);
  auto accumulate = [&total](const std::vector<double>& step, int64_t steps) {
    for (size_t k = 0; k < total.size(); ++k) total[k] += step[k] * static_cast<double>(steps);
  };
  for (const Phase& p : phases_) accumulate(per_step_.at({p.q, p.sigma}), p.steps);
  if (extra != nullptr && extra->steps > 0) {
    accumulate(compute_rdp(extra->q, extra->sigma, 1, orders_), extra->steps);
  }
  return total;
}

std::vector<double> RdpAccountant::rdp() const {
  return total_rdp(nullptr);
}

PrivacySpent RdpAccountant::spent(double delta) const {
  check_delta(delta);
  if (phases_.empty()) return {0, 0};
  return privacy_spent(orders_, total_rdp(nullptr), delta);
}

PrivacySpent RdpAccountant::spent_with(const Phase& planned, double delta) const {
  check_phase(planned);
  check_delta(delta);
  if (phases_.empty() && planned.steps == 0) return {0, 0};
  return privacy_spent(orders_, total_rdp(&planned), delta);
}

std::string RdpAccountant::to_json() const {
  nlohmann::json phases = nlohmann::json::array();
  for (const Phase& p : phases_) {
    phases.push_back({{"q", p.q}, {"sigma", p.sigma}, {"steps", p.steps}});
  }
  nlohmann::json j = {{"orders", orders_}, {"phases", std::move(phases)}};
  return j.dump();
}

RdpAccountant RdpAccountant::from_json(std::string_view json) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(json);
  } catch (const nlohmann::json::exception& e) {
    throw PrivacyError(std::string("accountant state is not valid JSON: ") + e.what());
  }
  auto field = [](const nlohmann::json& obj, const char* name) -> const nlohmann::json& {
    if (!obj.is_object() || !obj.contains(name)) {
      throw PrivacyError(std::string("accountant state lacks the field \"") + name + "\"");
    }
    return obj.at(name);
  };
  const nlohmann::json& orders = field(j, "orders");
  if (!orders.is_array()) throw PrivacyError("accountant state: \"orders\" is not an array");
  std::vector<double> order_values;
  for (const auto& o : orders) {
    if (!o.is_number()) throw PrivacyError("accountant state: an order is not a number");
    order_values.push_back(o.get<double>());
  }
  RdpAccountant acc(std::move(order_values));
  const nlohmann::json& phases = field(j, "phases");
  if (!phases.is_array()) throw PrivacyError("accountant state: \"phases\" is not an array");
  for (const auto& p : phases) {
    const nlohmann::json& q = field(p, "q");
    const nlohmann::json& sigma = field(p, "sigma");
    const nlohmann::json& steps = field(p, "steps");
    if (!q.is_number() || !sigma.is_number()) {
      throw PrivacyError("accountant state: a phase's q or sigma is not a number");
    }
    if (!steps.is_number_integer()) {
      throw PrivacyError("accountant state: a phase's steps is not an integer");
    }
    if (steps.is_number_unsigned() && steps.get<uint64_t>() > static_cast<uint64_t>(INT64_MAX)) {
      throw PrivacyError("accountant state: a phase's steps is out of range");
    }
    const Phase phase{q.get<double>(), sigma.get<double>(), steps.get<int64_t>()};
    try {
      check_phase(phase);
    } catch (const PrivacyError& e) {
      throw PrivacyError(std::string("accountant state: ") + e.what());
    }
    // Appended as stored (not merged) so that the reloaded state reproduces the saved one.
    if (phase.steps == 0) continue;
    if (__builtin_add_overflow(acc.total_steps_, phase.steps, &acc.total_steps_)) {
      throw PrivacyError("accountant state: the step count overflows a 64-bit integer");
    }
    acc.per_step(phase.q, phase.sigma);
    acc.phases_.push_back(phase);
  }
  return acc;
}

PrivacySpent epsilon_for(const Phase& phase, double delta, const std::vector<double>& orders) {
  check_phase(phase);
  return privacy_spent(orders, compute_rdp(phase.q, phase.sigma, phase.steps, orders), delta);
}

double sigma_for_epsilon(double q, int64_t steps, double target_epsilon, double delta,
                         const std::vector<double>& orders, const SigmaSearch& search) {
  check_sampling_rate(q);
  check_delta(delta);
  check_orders(orders);
  if (steps < 0) throw PrivacyError("steps must be >= 0, got " + std::to_string(steps));
  if (!(target_epsilon > 0 && std::isfinite(target_epsilon))) {
    throw PrivacyError("target epsilon must be finite and > 0, got " + format_number(target_epsilon));
  }
  if (!(search.sigma_min > 0 && search.sigma_max > search.sigma_min &&
        std::isfinite(search.sigma_max) && search.relative_tolerance > 0)) {
    throw PrivacyError("sigma search range must satisfy 0 < sigma_min < sigma_max < inf");
  }
  double lo = search.sigma_min;
  double hi = search.sigma_max;
  const double eps_hi = epsilon_at(q, hi, steps, delta, orders);
  if (!(eps_hi <= target_epsilon)) {
    throw PrivacyError("epsilon " + format_number(target_epsilon) + " at delta " + format_number(delta) +
                " is unreachable: even sigma=" + format_number(hi) + " spends epsilon " +
                format_number(eps_hi) + " (q=" + format_number(q) +
                ", steps=" + std::to_string(steps) + ")");
  }
  if (epsilon_at(q, lo, steps, delta, orders) <= target_epsilon) return lo;
  // Invariant: epsilon(lo) > target >= epsilon(hi); epsilon decreases as sigma grows.
  while (hi / lo - 1 > search.relative_tolerance) {
    const double mid = std::sqrt(lo * hi);
    if (mid <= lo || mid >= hi) break;
    if (epsilon_at(q, mid, steps, delta, orders) <= target_epsilon) {
      hi = mid;
    } else {
      lo = mid;
    }
  }
  return hi;
}

}  // namespace privacy
