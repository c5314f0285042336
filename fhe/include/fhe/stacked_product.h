// Stacked products: sum_j M_j * C_j of ONE fresh ciphertext whose rows are the C_j stacked.
//
// A group of projections that share their input (q, k, v of a layer) has input gradients that
// are summed: dx = sum_j W_j^T g_j = W^T g for the stacked W = [W_0; W_1; ...] and g = [g_0; g_1;
// ...]. A participant encrypts the stacked g once (sum of d_out_j rows); the product of each
// part's rows by its own M_j = W_j^T is formed separately and the products are added mod q,
// which the decryption sees as one product by [M_0 | M_1 | ...] (c0 and c1 are linear in the
// matrix). The noise of that product is bounded with the stacked matrix's row norms, which are
// at most the sums of the parts' (stacked_bounds); the scale must be chosen with those.
#pragma once

#include <cstddef>
#include <span>

#include "fhe/ciphertext.h"
#include "fhe/context.h"
#include "fhe/evaluator.h"
#include "fhe/noise.h"
#include "fhe/plane_gemm.h"

namespace fhe {

// Bounds that hold for the rows of [M_0 | M_1 | ...] given each part's: L1 the sum of the parts'
// largest row L1 norms, L2^2 the sum of their largest squared row L2 norms, the inner dimension
// the sum. Both sides of a stacked product (the encryptor choosing the scale, the worker checking
// it) compute them with this function from the same part bounds, so they agree exactly.
WeightBounds stacked_bounds(std::span<const WeightBounds> parts);

// acc += y (mod q), coefficient by coefficient, for two products (kind kProduct) of the same
// shape, scale and parameter set: the product by the two matrices side by side. Throws FheError
// when they do not match.
void add_product_into(const Context& ctx, CiphertextMatrix& acc, const CiphertextMatrix& y);

// sum_j parts[j] * (rows [o_j, o_j + parts[j]->in_dim()) of fresh), o_j the sum of the earlier
// parts' in_dim: a product ciphertext of out_dim rows (every part must have the same out_dim).
// Checks the input, that the parts' inner dimensions sum to its rows and the noise budget of the
// stacked product (stacked_bounds); throws FheError (also for an evaluator part that does not
// stack: ProductEvaluator::stacks).
CiphertextMatrix stacked_multiply(std::span<const PlaneGemm* const> parts,
                                  const CiphertextMatrix& fresh);
CiphertextMatrix stacked_multiply(std::span<const ProductEvaluator* const> parts,
                                  const CiphertextMatrix& fresh);

}  // namespace fhe
