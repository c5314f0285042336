// Gaussian noise from a cryptographically secure source.
//
// Uniform bits come from a RandomSource (random_source.h): by default OpenSSL's RAND_bytes (the
// operating system's CSPRNG through OpenSSL's DRBG), or, for runs that must replay bit for bit,
// the AES-256-CTR stream of a secret 32-byte seed. They are turned into standard normal samples
// with the Box-Muller transform in double precision; the same (seed, stream) therefore gives
// the same samples, in the same order, on every platform with IEEE doubles and a correctly
// rounded libm (log, sqrt, sin, cos).
// Never std::mt19937 or rand(): DP noise an adversary can predict protects nothing.
// (Floating-point samplers have known, tiny deviations from the ideal distribution; see Mironov,
// "On significance of the least significant bits for differential privacy", 2012.)
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "privacy/random_source.h"

namespace privacy {

class GaussianNoise {
 public:
  // Noise from RAND_bytes.
  GaussianNoise() = default;
  // Noise from `source` (e.g. RandomSource(seed, stream) for a replayable run).
  explicit GaussianNoise(RandomSource source);
  GaussianNoise(const GaussianNoise&) = delete;
  GaussianNoise& operator=(const GaussianNoise&) = delete;
  ~GaussianNoise();

  // One sample of N(0, stddev^2).
  double sample(double stddev);
  // Adds independent N(0, stddev^2) noise to every element.
  void add_to(std::span<float> values, double stddev);

 private:
  void refill();
  RandomSource source_;
  std::vector<uint64_t> bits_;  // unused CSPRNG words, wiped on destruction
  size_t next_ = 0;
  bool has_spare_ = false;
  double spare_ = 0;
};

}  // namespace privacy
