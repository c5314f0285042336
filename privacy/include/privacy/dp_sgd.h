// The DP-SGD aggregation step (Abadi et al. 2016, with Poisson sampling as Opacus does it):
//
//   g = ( sum_i clip_C(g_i) + N(0, sigma^2 C^2 I) ) / (q * N)
//
// where g_i is example i's gradient (all trainable parameters flattened), clip_C scales it to
// L2 norm at most C, q the Poisson sampling rate and N the dataset size, so q * N is the expected
// batch size (dividing by the realised batch size would leak it). The noise comes from
// GaussianNoise (a CSPRNG). With sigma = 0 and C = infinity the step is the plain sum of the
// per-example gradients divided by q * N.
//
//   privacy::DpSgdStep step(dim, {.clip = 1.0, .sigma = 1.1, .expected_batch = 0.01 * n});
//   for (each sampled example) step.add_example(per_example_gradient);
//   std::vector<float> g = step.finish(noise);
#pragma once

#include <cstddef>
#include <limits>
#include <span>
#include <vector>

#include "privacy/gaussian.h"

namespace privacy {

struct DpSgdConfig {
  double clip = std::numeric_limits<double>::infinity();  // C > 0; infinity: no clipping
  double sigma = 0;                                       // noise multiplier, >= 0
  double expected_batch = 1;                              // q * N, > 0
};

// Throws PrivacyError unless clip > 0 (or infinite), sigma >= 0 and finite, expected_batch > 0.
void check_dp_sgd(const DpSgdConfig& config);

// Scales v in place to L2 norm at most clip (no-op when clip is infinite or the norm is
// smaller); returns the norm before clipping.
double clip_to_norm(std::span<float> v, double clip);

class DpSgdStep {
 public:
  DpSgdStep(size_t dim, DpSgdConfig config);

  // Clips one example's gradient (a copy; the argument is not modified) and adds it to the sum.
  // Throws PrivacyError for a gradient of the wrong size or with a non-finite entry.
  void add_example(std::span<const float> gradient);

  size_t examples() const { return examples_; }
  // Largest per-example norm seen before clipping (for logs).
  double max_norm() const { return max_norm_; }

  // The noised, normalised gradient; the step can then be reused after reset().
  std::vector<float> finish(GaussianNoise& noise);
  void reset();

 private:
  size_t dim_;
  DpSgdConfig config_;
  std::vector<double> sum_;
  std::vector<float> scratch_;
  size_t examples_ = 0;
  double max_norm_ = 0;
};

// Participant-level DP: clips a round's adapter delta (all tensors flattened) to norm clip and
// adds N(0, sigma^2 clip^2) to every coordinate, in place. Account the rounds with
// RdpAccountant phases of q = the participant sampling rate, steps = rounds.
void clip_and_noise_delta(std::span<float> delta, double clip, double sigma, GaussianNoise& noise);

}  // namespace privacy
