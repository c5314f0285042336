// Causal grouped-query attention over the heads of a token batch (the part of Llama's attention
// between the q/k/v projections, after RoPE, and o_proj).
//
// For each sequence of the batch and each query head h, with kv head g = h / (heads / kv_heads)
// (the kv heads are repeated as transformers' repeat_kv does):
//   S = K_g^T Q_h / sqrt(head_dim)              keys x queries of the sequence
//   P = softmax over each column's keys 0..query (later keys masked out)
//   O_h = V_g P
// Q and O are heads*head_dim x T, K and V kv_heads*head_dim x T (activations.h layout). Scores
// and softmax are float32, as in transformers' eager attention.
#pragma once

#include <cstdint>
#include <vector>

#include <Eigen/Core>

#include "model/activations.h"
#include "model/token_batch.h"

namespace model {

struct AttentionShape {
  int64_t heads = 0;
  int64_t kv_heads = 0;
  int64_t head_dim = 0;
};

// What the backward pass needs besides Q, K and V: the attention probabilities.
struct AttentionCache {
  // probs[s * heads + h]: P of sequence s and query head h (length x length, column = query;
  // entries above the diagonal are 0).
  std::vector<Eigen::MatrixXf> probs;
};

// out (heads*head_dim x T) from q, k, v as above. `cache` may be null.
void attention_forward(const Activations& q, const Activations& k, const Activations& v,
                       const TokenBatch& batch, const AttentionShape& shape, Activations& out,
                       AttentionCache* cache = nullptr);

// In place, for a square matrix of scores (row = key, column = query): column j becomes the
// softmax of its rows 0..j, and rows after j become 0.
void causal_softmax_columns(Eigen::MatrixXf& scores);

}  // namespace model
