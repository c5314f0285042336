#include "participant/delta_dp.h"

#include <cmath>

#include "privacy/dp_sgd.h"
#include "privacy/error.h"
#include "privacy/gaussian.h"

namespace participant {

DeltaDpReport privatize_delta(std::span<float> delta, const DeltaDpParams& params,
                              const privacy::Seed& seed, uint64_t stream) {
  if (!(params.clip > 0) || !std::isfinite(params.clip)) {
    throw privacy::PrivacyError("participant-level DP: the delta's clip norm must be finite and > 0");
  }
  if (!(params.sigma >= 0) || !std::isfinite(params.sigma)) {
    throw privacy::PrivacyError("participant-level DP: the noise multiplier must be finite and >= 0");
  }
  double sq = 0;
  for (const float v : delta) {
    if (!std::isfinite(v)) throw privacy::PrivacyError("participant-level DP: the delta is not finite");
    sq += static_cast<double>(v) * static_cast<double>(v);
  }
  DeltaDpReport r;
  r.norm = std::sqrt(sq);
  r.clipped = r.norm > params.clip;
  r.noise_std = params.sigma * params.clip;
  privacy::GaussianNoise noise(privacy::RandomSource(seed, stream));
  privacy::clip_and_noise_delta(delta, params.clip, params.sigma, noise);
  return r;
}

}  // namespace participant
