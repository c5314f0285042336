// Reproducible integer draws from a std::mt19937_64 (private to the model library).
//
// std::uniform_int_distribution and friends are implementation-defined, so the same seed would
// give different data under different standard libraries; these helpers use only the engine's
// raw output, which the standard fixes.
#pragma once

#include <cstdint>
#include <random>

namespace model::detail {

// SplitMix64 finaliser: derives independent seeds from (seed, stream) pairs.
inline uint64_t mix_seed(uint64_t seed, uint64_t stream) {
  uint64_t z = seed + 0x9e3779b97f4a7c15ULL * (stream + 1);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

// Uniform in [0, n) for n >= 1, by rejection (no modulo bias).
inline uint64_t uniform_below(std::mt19937_64& engine, uint64_t n) {
  const uint64_t limit = UINT64_MAX - UINT64_MAX % n;  // a multiple of n
  uint64_t x = engine();
  while (x >= limit) x = engine();
  return x % n;
}

// Uniform in [lo, hi] (inclusive), lo <= hi.
inline int64_t uniform_between(std::mt19937_64& engine, int64_t lo, int64_t hi) {
  return lo + static_cast<int64_t>(uniform_below(engine, static_cast<uint64_t>(hi - lo) + 1));
}

// Uniform in [0, 1) with 53 random bits.
inline double uniform_unit(std::mt19937_64& engine) {
  return static_cast<double>(engine() >> 11) * 0x1p-53;
}

}  // namespace model::detail
