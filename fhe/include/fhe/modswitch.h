// Modulus switching of product replies: a worker may round its reply from q down to 2^b
// (b ~ 33-36 bits for int8 layers), so a value travels in 2b bits instead of 96.
//
// Switching c = (c0, c1) (coefficient domain) gives c' = round(c * 2^b / q) mod 2^b. Decryption
// then sees  c0' + c1' s = delta' m + n'  (mod 2^b), delta' = delta 2^b / q, with
//   n' = (2^b / q) n + r0 + sum_k r1_k s_k,   |r| <= 1/2 (+ 2^-20 for the double rounding),
// and returns m exactly when |n'| < delta' / 2. The bound treats n' as sub-Gaussian: n with
// variance proxy (eta/2) L2^2 (noise.h), and the rounding residues r1_k as independent and
// bounded (Hoeffding), the usual average-case model of modulus switching, which holds because
// c1 = W a is pseudorandom. With the union bound over every output the whole reply decrypts
// exactly except with probability < 2^-40. b is at most 36 so that the client's exact integer
// product c1' * s (|.| <= n 2^(b-1)) stays below q / 2.
#pragma once

#include <cstdint>

#include "fhe/ciphertext.h"
#include "fhe/context.h"
#include "fhe/noise.h"

namespace fhe {

constexpr uint32_t kMinSwitchBits = 12;
constexpr uint32_t kMaxSwitchBits = 36;

// The smallest b in [kMinSwitchBits, kMaxSwitchBits] for which a switched product with these
// bounds decrypts exactly (failure < 2^-40), or 0 when none does.
uint32_t choose_switch_bits(const Params& p, uint32_t log2_delta, const WeightBounds& bounds,
                            uint64_t outputs);

// Switches a product ciphertext (kind kProduct) to modulus 2^bits in place: c1 rows are brought
// to the coefficient domain with the inverse NTT and every coefficient is rounded.
void switch_modulus(const Context& ctx, CiphertextMatrix& ct, uint32_t bits);

// The reply step of every product: switches `product` (kind kProduct) in place to the smallest
// reply modulus 2^b that still decrypts exactly for a matrix with `bounds` (choose_switch_bits
// over `outputs` coefficients: the whole product's, also when `product` holds only some of its
// rows) and returns b, or returns 0 and leaves it unchanged when no b <= kMaxSwitchBits works.
// Throws FheError for a ciphertext that is not a product.
uint32_t switch_reply(const Context& ctx, CiphertextMatrix& product, const WeightBounds& bounds,
                      uint64_t outputs);

}  // namespace fhe
