#include "fhe/modswitch.h"

#include <cmath>
#include <string>
#include <vector>

#include "fhe/encryptor.h"

namespace fhe {

uint32_t choose_switch_bits(const Params& p, uint32_t log2_delta, const WeightBounds& bounds,
                            uint64_t outputs) {
  const double r = 0.5 + std::ldexp(1.0, -20);  // largest rounding residue
  const double log_fail = std::log(2.0 * static_cast<double>(outputs)) -
                          kMaxFailureLog2 * std::log(2.0);  // ln(2 * outputs * 2^40)
  for (uint32_t b = kMinSwitchBits; b <= kMaxSwitchBits; ++b) {
    const double rho = std::ldexp(1.0, static_cast<int>(b)) / static_cast<double>(p.q);
    const double delta_p = std::ldexp(1.0, static_cast<int>(log2_delta)) * rho;
    const double proxy = rho * rho * p.error_variance() * bounds.max_row_l2 * bounds.max_row_l2 +
                         static_cast<double>(p.n) * r * r;
    const double tail = std::sqrt(2.0 * proxy * log_fail);
    // Keep 2^-20 delta' of room: the client rounds v / delta' in double precision.
    if (delta_p / 2.0 - r - tail > std::ldexp(delta_p, -20)) return b;
  }
  return 0;
}

void switch_modulus(const Context& ctx, CiphertextMatrix& ct, uint32_t bits) {
  validate(ctx, ct, false);
  if (ct.kind != CtKind::kProduct) throw FheError("only product ciphertexts can be switched");
  if (bits < kMinSwitchBits || bits > kMaxSwitchBits) {
    throw FheError("reply modulus 2^" + std::to_string(bits) + " is out of range");
  }
  const size_t n = ctx.n();
  const double rho = std::ldexp(1.0, static_cast<int>(bits)) / static_cast<double>(ctx.q());
  const uint64_t mask = (uint64_t{1} << bits) - 1;
  const int64_t total = static_cast<int64_t>(ct.c0.size() / n);
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < total; ++r) {
    uint64_t* c0 = ct.c0.data() + static_cast<size_t>(r) * n;
    uint64_t* c1 = ct.c1.data() + static_cast<size_t>(r) * n;
    ctx.ntt().inverse(c1);
    for (size_t t = 0; t < n; ++t) {
      c0[t] = static_cast<uint64_t>(std::nearbyint(static_cast<double>(c0[t]) * rho)) & mask;
      c1[t] = static_cast<uint64_t>(std::nearbyint(static_cast<double>(c1[t]) * rho)) & mask;
    }
  }
  ct.kind = CtKind::kSwitched;
  ct.log2_modulus = bits;
}

uint32_t switch_reply(const Context& ctx, CiphertextMatrix& product, const WeightBounds& bounds,
                      uint64_t outputs) {
  if (product.kind != CtKind::kProduct) throw FheError("switch_reply expects a product");
  const uint32_t bits = choose_switch_bits(ctx.params(), product.log2_delta, bounds, outputs);
  if (bits == 0) return 0;
  switch_modulus(ctx, product, bits);
  return bits;
}

}  // namespace fhe
