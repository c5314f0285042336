#include "fhe/noise.h"

#include <cmath>
#include <cstdio>
#include <limits>
#include <string>
#include <vector>

#include "fhe/modarith.h"

namespace fhe {

namespace {

std::string fmt(const char* f, double a, double b = 0, double c = 0) {
  char buf[256];
  std::snprintf(buf, sizeof buf, f, a, b, c);
  return buf;
}

}  // namespace

WeightBounds worst_case_bounds(uint64_t inner_dim) {
  return {kInt8Magnitude * inner_dim, kInt8Magnitude * std::sqrt(static_cast<double>(inner_dim)),
          inner_dim};
}

WeightBounds measure_bounds(const int8_t* w, size_t d_out, size_t d_in, bool transpose) {
  const size_t rows = transpose ? d_in : d_out, cols = transpose ? d_out : d_in;
  WeightBounds b{0, 0, cols};
  std::vector<uint64_t> l1(rows, 0), l2(rows, 0);
  for (size_t i = 0; i < d_out; ++i) {
    for (size_t j = 0; j < d_in; ++j) {
      const int64_t v = w[i * d_in + j];
      const size_t r = transpose ? j : i;
      l1[r] += static_cast<uint64_t>(v < 0 ? -v : v);
      l2[r] += static_cast<uint64_t>(v * v);
    }
  }
  for (size_t r = 0; r < rows; ++r) {
    b.max_row_l1 = std::max(b.max_row_l1, l1[r]);
    b.max_row_l2 = std::max(b.max_row_l2, std::sqrt(static_cast<double>(l2[r])));
  }
  return b;
}

bool message_fits(const Params& p, uint32_t log2_delta, uint64_t max_row_l1) {
  if (log2_delta >= p.log2_q) return false;
  // delta * (2 * 128 * L1 + 1) <= q - 1
  const u128 lhs = (static_cast<u128>(2 * kInt8Magnitude) * max_row_l1 + 1) << log2_delta;
  return lhs <= static_cast<u128>(p.q - 1);
}

double failure_log2(const Params& p, uint32_t log2_delta, double max_row_l2, uint64_t outputs) {
  if (max_row_l2 <= 0) return -std::numeric_limits<double>::infinity();
  const double delta = std::ldexp(1.0, static_cast<int>(log2_delta));
  const double exponent = delta * delta / (4.0 * p.eta * max_row_l2 * max_row_l2);  // nats
  return std::log2(2.0 * static_cast<double>(outputs)) - exponent / std::log(2.0);
}

uint32_t choose_log2_delta(const Params& p, const WeightBounds& b, uint64_t outputs) {
  int d = static_cast<int>(p.log2_q) - 1;
  while (d >= 0 && !message_fits(p, static_cast<uint32_t>(d), b.max_row_l1)) --d;
  if (d < 0) {
    throw FheError(fmt("inner dimension %.0f is too large: no scale fits the message bound of ",
                    static_cast<double>(b.inner_dim)) +
                p.name);
  }
  const double f = failure_log2(p, static_cast<uint32_t>(d), b.max_row_l2, outputs);
  if (f > kMaxFailureLog2) {
    // Smallest delta the noise would need, for the message.
    const double need =
        2.0 * b.max_row_l2 *
        std::sqrt(p.eta * (std::log(2.0 * outputs) - kMaxFailureLog2 * std::log(2.0)));
    throw FheError(
        fmt("inner dimension %.0f is too large for one product: decryption would fail with "
            "probability 2^%.1f > 2^-40 (noise needs delta >= 2^%.1f",
            static_cast<double>(b.inner_dim), f, std::log2(need)) +
        fmt(", the message allows at most 2^%.0f); split the product into column blocks", d));
  }
  return static_cast<uint32_t>(d);
}

void check_product(const Params& p, uint32_t log2_delta, const WeightBounds& b, uint64_t outputs) {
  if (!message_fits(p, log2_delta, b.max_row_l1)) {
    throw FheError(
        fmt("scale 2^%.0f is too large for this product: a row with L1 norm %.0f can "
            "overflow q (the encryptor must assume weights at least this large)",
            log2_delta, static_cast<double>(b.max_row_l1)));
  }
  const double f = failure_log2(p, log2_delta, b.max_row_l2, outputs);
  if (f > kMaxFailureLog2) {
    throw FheError(
        fmt("scale 2^%.0f is too small for this product: decryption would fail with "
            "probability 2^%.1f > 2^-40 (largest row L2 norm %.1f)",
            log2_delta, f, b.max_row_l2));
  }
}

}  // namespace fhe
