// Causal grouped-query attention over the heads of a token batch (the part of Llama's attention
// between the q/k/v projections, after RoPE, and o_proj), forward and backward.
//
// For each sequence of the batch and each query head h, with kv head g = h / (heads / kv_heads)
// (the kv heads are repeated as transformers' repeat_kv does):
//   S = K_g^T Q_h / sqrt(head_dim)              keys x queries of the sequence
//   P = softmax over each column's keys 0..query (later keys masked out)
//   O_h = V_g P
// Q and O are heads*head_dim x T, K and V kv_heads*head_dim x T (activations.h layout). Scores
// and softmax are computed in Scalar (float32 for the model, as in transformers' eager
// attention; double for gradient checks).
//
// Backward, with dO = dL/dO, per sequence and query head:
//   dV_g += dO_h P^T                 dP = V_g^T dO_h
//   dS(:, j) = P(:, j) .* (dP(:, j) - sum_i P(i, j) dP(i, j))     (softmax; masked entries stay 0)
//   dQ_h = K_g dS / sqrt(head_dim)   dK_g += Q_h dS^T / sqrt(head_dim)
// the kv-head gradients summing over the heads / kv_heads query heads that share them.
#pragma once

#include <cstdint>
#include <type_traits>
#include <vector>

#include "model/activations.h"
#include "model/token_batch.h"

namespace model {

struct AttentionShape {
  int64_t heads = 0;
  int64_t kv_heads = 0;
  int64_t head_dim = 0;
};

// What the backward pass needs besides Q, K and V: the attention probabilities.
template <typename Scalar>
struct AttentionCacheT {
  // probs[s * heads + h]: P of sequence s and query head h (length x length, column = query;
  // entries above the diagonal are 0).
  std::vector<ActivationsT<Scalar>> probs;
};
using AttentionCache = AttentionCacheT<float>;

// out (heads*head_dim x T) from q, k, v as above. `cache` may be null. Throws model::ModelError
// when the shapes do not fit `shape` and the batch.
template <typename Scalar>
void attention_forward(const ActivationsT<Scalar>& q, const ActivationsT<Scalar>& k,
                       const ActivationsT<Scalar>& v, const TokenBatch& batch,
                       const AttentionShape& shape, ActivationsT<Scalar>& out,
                       std::type_identity_t<AttentionCacheT<Scalar>>* cache = nullptr);

// dq, dk, dv (resized like q, k, v) from the forward's inputs, its cache and dout = dL/dout.
// Throws model::ModelError when the shapes or the cache do not fit.
template <typename Scalar>
void attention_backward(const ActivationsT<Scalar>& q, const ActivationsT<Scalar>& k,
                        const ActivationsT<Scalar>& v, const TokenBatch& batch,
                        const AttentionShape& shape,
                        const std::type_identity_t<AttentionCacheT<Scalar>>& cache,
                        const std::type_identity_t<ActivationsT<Scalar>>& dout,
                        std::type_identity_t<ActivationsT<Scalar>>& dq,
                        std::type_identity_t<ActivationsT<Scalar>>& dk,
                        std::type_identity_t<ActivationsT<Scalar>>& dv);

// In place, for a square matrix of scores (row = key, column = query): column j becomes the
// softmax of its rows 0..j, and rows after j become 0.
template <typename Scalar>
void causal_softmax_columns(ActivationsT<Scalar>& scores);

// The softmax backward of each column, in place: given the probabilities P that
// causal_softmax_columns produced and grad = dL/dP, grad becomes dL/dscores
// (P .* (grad - column sum of P .* grad)); masked entries become 0.
template <typename Scalar>
void softmax_columns_backward(const ActivationsT<Scalar>& probs,
                              std::type_identity_t<ActivationsT<Scalar>>& grad);

}  // namespace model
