#include "coordinator/accumulator.h"

#include <cmath>
#include <cstring>

namespace coordinator {
namespace {

// round(x * n * 2^kFractionBits), exactly: x = m * 2^e with an integer mantissa m (24 bits), so
// the product m * n is an exact integer (< 2^56) and only the final shift rounds (half up).
__int128 fixed_term(float x, uint64_t n) {
  uint32_t bits;
  std::memcpy(&bits, &x, sizeof bits);
  const bool negative = (bits >> 31) != 0;
  const int exp_field = static_cast<int>((bits >> 23) & 0xff);
  int64_t mantissa = bits & 0x7fffff;
  int exponent;
  if (exp_field == 0) {
    exponent = -149;  // subnormal
  } else {
    mantissa |= 0x800000;
    exponent = exp_field - 150;
  }
  __int128 v = static_cast<__int128>(mantissa) * static_cast<__int128>(n);
  const int shift = exponent + DeltaAccumulator::kFractionBits;
  if (shift >= 0) {
    v <<= shift;  // |v| < 2^56 * 2^(24+...) bounded by the magnitude check
  } else if (-shift >= 120) {
    v = 0;
  } else {
    const __int128 half = static_cast<__int128>(1) << (-shift - 1);
    v = (v + half) >> (-shift);
  }
  return negative ? -v : v;
}

}  // namespace

protocol::Status DeltaAccumulator::add(std::span<const float> delta, uint64_t examples) {
  using protocol::ErrorCode;
  using protocol::make_error;
  if (delta.size() != sum_.size()) {
    return make_error(ErrorCode::kShapeMismatch, "delta has ", delta.size(), " values, expected ",
                      sum_.size());
  }
  if (examples == 0 || examples > kMaxExamples) {
    return make_error(ErrorCode::kMalformedRequest, "example count ", examples,
                      " out of range (1..2^32)");
  }
  if (contributions_ >= kMaxContributions) {
    return make_error(ErrorCode::kOverloaded, "too many contributions in one round");
  }
  for (size_t i = 0; i < delta.size(); ++i) {
    if (!std::isfinite(delta[i]) || std::fabs(delta[i]) > kMaxMagnitude) {
      return make_error(ErrorCode::kMalformedRequest, "delta value ", i,
                        " is not finite or exceeds 2^24 in magnitude");
    }
  }
  for (size_t i = 0; i < delta.size(); ++i) sum_[i] += fixed_term(delta[i], examples);
  total_examples_ += examples;
  ++contributions_;
  return protocol::ok_status();
}

std::vector<float> DeltaAccumulator::mean() const {
  std::vector<float> out(sum_.size(), 0.0f);
  if (total_examples_ == 0) return out;
  const double scale = std::ldexp(1.0, -kFractionBits) / static_cast<double>(total_examples_);
  for (size_t i = 0; i < sum_.size(); ++i) {
    out[i] = static_cast<float>(static_cast<double>(sum_[i]) * scale);
  }
  return out;
}

void DeltaAccumulator::reset() {
  std::fill(sum_.begin(), sum_.end(), 0);
  total_examples_ = 0;
  contributions_ = 0;
}

}  // namespace coordinator
