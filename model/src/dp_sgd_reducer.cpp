#include "model/dp_sgd_reducer.h"

#include <cmath>
#include <string>
#include <utility>

#include "model/error.h"
#include "privacy/error.h"

namespace model {
namespace {

// Calls f(span) on every non-empty matrix of `g`, in ids() order, A before B.
template <typename F>
void for_each_matrix(LoraParams& g, F&& f) {
  for (const ProjectionId id : g.ids()) {
    LoraPair& p = g.at(id);
    if (p.a.size() != 0) f(std::span<float>(p.a.data(), static_cast<size_t>(p.a.size())));
    if (p.b.size() != 0) f(std::span<float>(p.b.data(), static_cast<size_t>(p.b.size())));
  }
}

const privacy::DpSgdConfig& checked(const privacy::DpSgdConfig& config) {
  try {
    privacy::check_dp_sgd(config);
  } catch (const privacy::PrivacyError& e) {
    throw ModelError(e.what());
  }
  if (config.sigma > 0 && !std::isfinite(config.clip)) {
    throw ModelError("DP-SGD noise needs a finite clipping norm");
  }
  return config;
}

}  // namespace

double clip_lora_to_norm(LoraParams& g, double clip) {
  const double norm = std::sqrt(g.squared_norm());
  if (!std::isfinite(clip) || !(norm > clip)) return norm;
  g *= static_cast<float>(clip / norm);
  // Rounding may leave the norm a hair above clip: shrink every element by one ulp until not.
  while (std::sqrt(g.squared_norm()) > clip) {
    for_each_matrix(g, [](std::span<float> m) {
      for (float& x : m) x = std::nextafter(x, 0.0f);
    });
  }
  return norm;
}

DpSgdReducer::DpSgdReducer(const privacy::DpSgdConfig& config, privacy::GaussianNoise& noise)
    : config_(checked(config)), noise_(noise) {}

void DpSgdReducer::add(std::span<const LoraParams> per_example, std::span<const int64_t> predicted,
                       LoraParams& sum) {
  if (per_example.size() != predicted.size()) {
    throw ModelError("DP-SGD: " + std::to_string(per_example.size()) + " per-example gradients for " +
                std::to_string(predicted.size()) + " sequences");
  }
  int64_t batch_predicted = 0;
  for (const int64_t p : predicted) batch_predicted += p;
  for (size_t s = 0; s < per_example.size(); ++s) {
    LoraParams g = per_example[s];
    // From the share of the micro-batch mean to the example's own mean-loss gradient. An
    // example without a predicted token has a zero gradient (and still counts as sampled).
    if (predicted[s] > 0 && predicted[s] != batch_predicted) {
      g *= static_cast<float>(static_cast<double>(batch_predicted) /
                              static_cast<double>(predicted[s]));
    }
    const double norm = clip_lora_to_norm(g, config_.clip);
    if (!std::isfinite(norm)) throw ModelError("DP-SGD: a per-example gradient is not finite");
    ++current_.examples;
    if (std::isfinite(config_.clip) && norm > config_.clip) ++current_.clipped;
    if (norm > current_.max_norm) current_.max_norm = norm;
    current_.norms_after.push_back(std::sqrt(g.squared_norm()));
    sum += g;
  }
}

void DpSgdReducer::finish(LoraParams& sum, int64_t examples, int64_t predicted) {
  (void)examples;
  (void)predicted;
  const double stddev = config_.sigma > 0 ? config_.sigma * config_.clip : 0.0;
  const double divisor = config_.expected_batch;
  for_each_matrix(sum, [&](std::span<float> m) {
    for (float& x : m) {
      double v = static_cast<double>(x);
      if (stddev > 0) v += noise_.sample(stddev);
      x = static_cast<float>(v / divisor);
    }
  });
  last_ = std::move(current_);
  current_ = StepStats{};
}

}  // namespace model
