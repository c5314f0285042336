// Next-token cross-entropy of a causal language model, as transformers' ForCausalLMLoss
// computes it: position p of each sequence predicts token p + 1, and the loss is the mean of
// -log softmax(logits_p)[token_{p+1}] over every predicted position of every sequence (the last
// position of a sequence predicts nothing). Its backward pass: for each predicted position,
//   dL/dlogits_p = (softmax(logits_p) - onehot(token_{p+1})) / predicted
// and 0 for the positions that predict nothing.
//
// Scalar, the logits' type, is float for the model (the default, so that Eigen expressions of
// float logits convert) and double for gradient checks: cross_entropy_forward<double>(...).
#pragma once

#include <cstdint>
#include <span>
#include <type_traits>
#include <vector>

#include <Eigen/Core>

#include "model/activations.h"
#include "model/llama_weights.h"
#include "model/token_batch.h"

namespace model {

// What the backward pass needs besides the logits: log-sum-exp of each row.
struct CrossEntropyCache {
  Eigen::VectorXd log_sum_exp;  // [T]; 0 for positions that predict nothing
  int64_t predicted = 0;        // positions counted in the mean
};

// logits: T x V, row t = column t of the batch. Throws model::ModelError when the shapes disagree,
// a label lies outside [0, V) or no sequence has two tokens. Computed in double from the logits.
template <typename Scalar = float>
double cross_entropy_forward(const std::type_identity_t<RowMatrixT<Scalar>>& logits,
                             const TokenBatch& batch, CrossEntropyCache* cache = nullptr);

// dlogits (T x V) = dloss * dL/dlogits, from the logits and the cache of the forward pass
// (computed in double, rounded once to Scalar). Throws model::ModelError when the cache does not
// belong to these logits.
template <typename Scalar = float>
void cross_entropy_backward(const std::type_identity_t<RowMatrixT<Scalar>>& logits,
                            const TokenBatch& batch, const CrossEntropyCache& cache, double dloss,
                            std::type_identity_t<RowMatrixT<Scalar>>& dlogits);

// --- By columns, for a chunked LM head
// ------------------------------------------------------------ The same loss and gradient computed
// a few positions at a time, so that a large vocabulary never needs the logits of a whole batch in
// memory (LlamaModel::lora_step and loss do this). Summed in position order, the chunks give
// cross_entropy_forward's value and cross_entropy_backward's dlogits exactly, for the same logits.

// label[t] = the token after position t in its sequence, or -1 when position t predicts nothing
// (the last position of a sequence). Throws model::ModelError for a label outside [0, vocab).
std::vector<int32_t> next_token_labels(const TokenBatch& batch, int64_t vocab);

// For logits of n consecutive positions as columns (vocab x n; column j is position t0 + j) and
// those positions' labels: adds -log softmax[label] of every predicted position to `total`, in
// position order (so that chunks taken in order sum exactly as one pass does), and when
// `dlogits` is given fills it (vocab x n) with dloss_per_position * (softmax - onehot(label))
// per predicted column, 0 elsewhere.
template <typename Scalar = float>
void cross_entropy_columns(const ActivationsT<Scalar>& logits, std::span<const int32_t> labels,
                           double dloss_per_position, ActivationsT<Scalar>* dlogits, double& total);

}  // namespace model
