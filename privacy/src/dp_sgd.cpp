#include "privacy/dp_sgd.h"

#include <cmath>
#include <string>

#include "privacy/error.h"

namespace privacy {

void check_dp_sgd(const DpSgdConfig& c) {
  if (!(c.clip > 0)) throw PrivacyError("DP-SGD clipping norm must be > 0, got " + std::to_string(c.clip));
  if (!(c.sigma >= 0) || !std::isfinite(c.sigma)) {
    throw PrivacyError("DP-SGD noise multiplier must be finite and >= 0, got " + std::to_string(c.sigma));
  }
  if (!(c.expected_batch > 0) || !std::isfinite(c.expected_batch)) {
    throw PrivacyError("DP-SGD expected batch size must be > 0, got " + std::to_string(c.expected_batch));
  }
}

double clip_to_norm(std::span<float> v, double clip) {
  double sq = 0;
  for (float x : v) sq += static_cast<double>(x) * x;
  const double norm = std::sqrt(sq);
  if (std::isfinite(clip) && norm > clip) {
    const double scale = clip / norm;
    for (float& x : v) x = static_cast<float>(x * scale);
    // Rounding may leave the norm a hair above clip: shrink until it is not.
    double after = 0;
    for (float x : v) after += static_cast<double>(x) * x;
    while (std::sqrt(after) > clip) {
      after = 0;
      for (float& x : v) {
        x = std::nextafter(x, 0.0f);
        after += static_cast<double>(x) * x;
      }
    }
  }
  return norm;
}

DpSgdStep::DpSgdStep(size_t dim, DpSgdConfig config)
    : dim_(dim), config_(config), sum_(dim, 0.0), scratch_(dim) {
  check_dp_sgd(config_);
}

void DpSgdStep::add_example(std::span<const float> gradient) {
  if (gradient.size() != dim_) {
    throw PrivacyError("per-example gradient has " + std::to_string(gradient.size()) +
                " entries, expected " + std::to_string(dim_));
  }
  for (size_t i = 0; i < dim_; ++i) {
    if (!std::isfinite(gradient[i])) throw PrivacyError("per-example gradient is not finite");
    scratch_[i] = gradient[i];
  }
  const double norm = clip_to_norm(scratch_, config_.clip);
  if (norm > max_norm_) max_norm_ = norm;
  for (size_t i = 0; i < dim_; ++i) sum_[i] += scratch_[i];
  ++examples_;
}

std::vector<float> DpSgdStep::finish(GaussianNoise& noise) {
  std::vector<float> g(dim_);
  const double stddev = std::isfinite(config_.clip) ? config_.sigma * config_.clip : 0.0;
  if (config_.sigma > 0 && !std::isfinite(config_.clip)) {
    throw PrivacyError("DP-SGD noise needs a finite clipping norm");
  }
  for (size_t i = 0; i < dim_; ++i) {
    const double noisy = stddev > 0 ? sum_[i] + noise.sample(stddev) : sum_[i];
    g[i] = static_cast<float>(noisy / config_.expected_batch);
  }
  return g;
}

void DpSgdStep::reset() {
  std::fill(sum_.begin(), sum_.end(), 0.0);
  examples_ = 0;
  max_norm_ = 0;
}

void clip_and_noise_delta(std::span<float> delta, double clip, double sigma, GaussianNoise& noise) {
  if (!(clip > 0) || !std::isfinite(clip)) throw PrivacyError("delta clipping norm must be finite, > 0");
  if (!(sigma >= 0) || !std::isfinite(sigma)) throw PrivacyError("delta noise multiplier must be >= 0");
  clip_to_norm(delta, clip);
  if (sigma > 0) noise.add_to(delta, sigma * clip);
}

}  // namespace privacy
