// Participant-level DP of one round's adapter delta (docs/design.md §5, the option): the whole
// delta (every adapter tensor, flattened as one vector) is clipped to L2 norm C_u and
// N(0, sigma_u^2 C_u^2) is added to every coordinate, so that the upload is a Gaussian mechanism
// over the site's entire dataset. The coordinator accounts it across rounds.
//
//   const auto r = participant::privatize_delta(delta_values, {.clip = 0.1, .sigma = 1.0},
//                                               release.key, participant::kDeltaNoiseStream);
//   log("delta norm {} -> clipped to {}, noise std {}", r.norm, r.clip, r.noise_std);
//
// The noise comes from the seeded AES-256-CTR stream (key, stream) of privacy::RandomSource:
// the release's own key (releases.h) and its delta-noise stream, apart from the release's DP-SGD
// sampling and noise streams, so the same release gives the same noised delta bit for bit and
// no two releases share noise.
#pragma once

#include <cstdint>
#include <span>

#include "privacy/random_source.h"

namespace participant {

struct DeltaDpParams {
  double clip = 0;   // C_u: finite, > 0
  double sigma = 0;  // sigma_u: finite, >= 0 (0: clipping only)
};

struct DeltaDpReport {
  double norm = 0;       // L2 norm of the delta before clipping
  bool clipped = false;  // norm > clip: the delta was scaled down to norm clip
  double noise_std = 0;  // sigma * clip, per coordinate
};

// Clips `delta` in place to L2 norm params.clip and adds the noise from (seed, stream). Throws
// privacy::PrivacyError for invalid parameters or a non-finite delta entry (the delta is then
// unchanged).
DeltaDpReport privatize_delta(std::span<float> delta, const DeltaDpParams& params,
                              const privacy::Seed& seed, uint64_t stream);

}  // namespace participant
