// DP-SGD for LoRA training (Abadi et al. 2016, with Poisson sampling as Opacus does it): the
// GradientReducer (trainer.h) that clips every example's gradient and adds Gaussian noise.
//
//   privacy::RandomSource sampling_bits;                  // OS CSPRNG (or a seeded stream)
//   model::UrbgRandomBits<privacy::RandomSource> bits(sampling_bits);
//   model::PoissonBatchSampler sampler(train.size(), q, bits);
//   privacy::GaussianNoise noise;                         // RAND_bytes (or a seeded stream)
//   model::DpSgdReducer dp({.clip = 1.0, .sigma = 1.1, .expected_batch = q * train.size()}, noise);
//   trainer.set_batch_sampler(&sampler);
//   trainer.set_gradient_reducer(&dp);
//   // account each step as privacy::Phase{.q = q, .sigma = 1.1, .steps = 1}
//
// Each step's gradient is
//
//   g = ( sum_i clip_C(g_i) + N(0, sigma^2 C^2 I) ) / (q * N)
//
// - g_i is example i's own gradient: that of the mean cross-entropy over *its* predicted tokens
//   (the trainer hands over shares of the micro-batch mean; they are rescaled by P / P_i, the
//   micro-batch's predicted tokens over the example's). An example is one JSON-lines record.
// - clip_C scales g_i, all trained LoRA matrices flattened into one vector (no A when A is
//   frozen), to L2 norm at most C; the result's norm is guaranteed <= C after float rounding.
// - the noise is added once per step to every trained coordinate of the sum, from a
//   privacy::GaussianNoise (a CSPRNG: RAND_bytes, or a seeded AES-256-CTR stream to replay a
//   run bit for bit).
// - q * N, the *expected* batch size, divides the sum: dividing by the realised batch size would
//   leak it.
// The sum is formed in float in the trainer's order, so with sigma = 0, C = infinity and q * N
// equal to the batch size, a step on micro-batches of one example each equals the non-DP step
// on the same batch bit for bit when every example has the same number of predicted tokens and
// the batch size is a power of two (every rescaling is then exact).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "model/lora_params.h"
#include "model/trainer.h"
#include "privacy/dp_sgd.h"
#include "privacy/gaussian.h"

namespace model {

// Scales `g` to L2 norm (over every element of every matrix) at most `clip`; a no-op for an
// infinite clip or a smaller norm. Returns the norm before clipping.
double clip_lora_to_norm(LoraParams& g, double clip);

class DpSgdReducer : public GradientReducer {
 public:
  // What the last finished step did (for logs and tests).
  struct StepStats {
    int64_t examples = 0;             // per-example gradients clipped and summed
    int64_t clipped = 0;              // of which had a norm above C
    double max_norm = 0;              // largest norm before clipping
    std::vector<double> norms_after;  // every example's norm after clipping, in order
  };

  // config: clip C > 0 (infinity: no clipping), sigma >= 0, expected_batch = q * N > 0. Throws
  // model::ModelError for an invalid config, or sigma > 0 with an infinite C. Holds a reference to
  // `noise`, which must outlive the reducer.
  DpSgdReducer(const privacy::DpSgdConfig& config, privacy::GaussianNoise& noise);

  void add(std::span<const LoraParams> per_example, std::span<const int64_t> predicted,
           LoraParams& sum) override;
  void finish(LoraParams& sum, int64_t examples, int64_t predicted) override;

  const privacy::DpSgdConfig& config() const { return config_; }
  const StepStats& last_step() const { return last_; }

 private:
  privacy::DpSgdConfig config_;
  privacy::GaussianNoise& noise_;
  StepStats current_;
  StepStats last_;
};

}  // namespace model
