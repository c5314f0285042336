// Streaming, order-independent aggregation of weighted deltas.
//
// Each contribution (a delta and its example count n) is added element by element as the
// integer round(n * delta * 2^kFractionBits), computed exactly from the float's mantissa and
// exponent, into a 128-bit accumulator. Integer addition is associative, so the sum, and the
// mean derived from it, are the same bit for bit whatever order the sites' uploads arrive in,
// and a replayed run reproduces the same adapter. Memory: one int128 per adapter element,
// independent of the number of sites.
//
// Bounds (refused otherwise): finite values with |delta| <= 2^24, 1 <= n <= 2^32, so each term
// stays below 2^(24+32+48) = 2^104 and 2^22 contributions fit in 127 bits.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "protocol/result.h"

namespace coordinator {

class DeltaAccumulator {
 public:
  static constexpr int kFractionBits = 48;
  static constexpr double kMaxMagnitude = 16777216.0;  // 2^24
  static constexpr uint64_t kMaxExamples = uint64_t{1} << 32;
  static constexpr uint64_t kMaxContributions = uint64_t{1} << 22;

  explicit DeltaAccumulator(size_t size) : sum_(size) {}

  // Adds n * delta; refuses (nothing added) a size mismatch, a non-finite or too large value,
  // an example count out of range, or more contributions than fit.
  protocol::Status add(std::span<const float> delta, uint64_t examples);

  size_t size() const { return sum_.size(); }
  uint64_t total_examples() const { return total_examples_; }
  uint64_t contributions() const { return contributions_; }

  // The example-weighted mean delta (zeros when nothing was added).
  std::vector<float> mean() const;
  void reset();

 private:
  std::vector<__int128> sum_;
  uint64_t total_examples_ = 0;
  uint64_t contributions_ = 0;
};

}  // namespace coordinator
