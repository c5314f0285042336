// Choosing the scale delta and proving that a product decrypts exactly.
//
// A product row i decrypts to  delta * y_i + n_i  (mod q), with y_i = sum_j w_ij x_j and noise
// n_i = sum_j w_ij e_j. Decryption rounds to the nearest multiple of delta on the centred
// representative, so it returns y_i exactly when
//   (message)  delta * (128 * L1_i) + delta / 2 <= (q - 1) / 2        (|x| <= 128)
//   (noise)    |n_i| < delta / 2.
// Each error coefficient is centred binomial with parameter eta, which is sub-Gaussian with
// variance proxy eta/2 (it is a sum of 2*eta independent +-1/2 Bernoulli deviations), so n_i is
// sub-Gaussian with proxy (eta/2) * L2_i^2 and  P(|n_i| >= delta/2) <= 2 exp(-delta^2 / (8 (eta/2)
// L2_i^2)). By the union bound over all `outputs` coefficients of the product, the whole product
// decrypts exactly except with probability at most outputs * 2 exp(-delta^2 / (4 eta L2^2)), L2 the
// largest row norm. We require that bound to be below 2^-40, and refuse otherwise.
//
// delta is a power of two (decryption rounds with a shift): the largest one the message bound
// allows, which leaves the most room for noise.
#pragma once

#include <cstddef>
#include <cstdint>

#include "fhe/params.h"

namespace fhe {

// Largest failure probability accepted for one product, as log2.
constexpr double kMaxFailureLog2 = -40.0;
// Output count assumed by an encryptor that does not know the product it feeds (2^32 values).
constexpr uint64_t kDefaultMaxOutputs = uint64_t{1} << 32;

// Norms of the rows of the matrix a ciphertext is multiplied by.
struct WeightBounds {
  uint64_t max_row_l1 = 0;  // max_i sum_j |w_ij|
  double max_row_l2 = 0;    // max_i sqrt(sum_j w_ij^2)
  uint64_t inner_dim = 0;   // number of columns (rows of the ciphertext matrix)
};

// Bounds that hold for every int8 matrix with `inner_dim` columns (|w| <= 128).
WeightBounds worst_case_bounds(uint64_t inner_dim);

// Exact bounds of M = W (transpose = false) or M = W^T (transpose = true), W row-major d_out x
// d_in.
WeightBounds measure_bounds(const int8_t* w, size_t d_out, size_t d_in, bool transpose);

// True when the message bound holds for delta = 2^log2_delta.
bool message_fits(const Params& p, uint32_t log2_delta, uint64_t max_row_l1);

// log2 of the union bound on the probability that a product with `outputs` coefficients fails.
double failure_log2(const Params& p, uint32_t log2_delta, double max_row_l2, uint64_t outputs);

// The largest power-of-two delta meeting the message bound; throws FheError, saying which bound
// fails and by how much, when no delta meets both bounds.
uint32_t choose_log2_delta(const Params& p, const WeightBounds& b,
                           uint64_t outputs = kDefaultMaxOutputs);

// Throws FheError unless a product with these bounds decrypts exactly (failure < 2^-40).
void check_product(const Params& p, uint32_t log2_delta, const WeightBounds& b, uint64_t outputs);

}  // namespace fhe
