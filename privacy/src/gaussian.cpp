#include "privacy/gaussian.h"

#include <openssl/crypto.h>

#include <cmath>
#include <numbers>
#include <utility>

#include "privacy/error.h"

namespace privacy {

GaussianNoise::GaussianNoise(RandomSource source) : source_(std::move(source)) {}

GaussianNoise::~GaussianNoise() {
  if (!bits_.empty()) OPENSSL_cleanse(bits_.data(), bits_.size() * sizeof(uint64_t));
  OPENSSL_cleanse(&spare_, sizeof spare_);
}

void GaussianNoise::refill() {
  bits_.resize(4096);
  for (uint64_t& w : bits_) w = source_.next_u64();  // little-endian words on every platform
  next_ = 0;
}

double GaussianNoise::sample(double stddev) {
  if (!(stddev >= 0) || !std::isfinite(stddev)) throw PrivacyError("noise stddev must be finite, >= 0");
  if (has_spare_) {
    has_spare_ = false;
    return spare_ * stddev;
  }
  if (next_ + 2 > bits_.size()) refill();
  // u1 in (0, 1] and u2 in [0, 1), 53 random bits each.
  const double u1 = static_cast<double>((bits_[next_++] >> 11) + 1) * 0x1.0p-53;
  const double u2 = static_cast<double>(bits_[next_++] >> 11) * 0x1.0p-53;
  const double r = std::sqrt(-2.0 * std::log(u1));
  const double angle = 2.0 * std::numbers::pi * u2;
  spare_ = r * std::sin(angle);
  has_spare_ = true;
  return r * std::cos(angle) * stddev;
}

void GaussianNoise::add_to(std::span<float> values, double stddev) {
  for (float& v : values) v = static_cast<float>(static_cast<double>(v) + sample(stddev));
}

}  // namespace privacy
