// Next-token cross-entropy of a causal language model, as transformers' ForCausalLMLoss
// computes it: position p of each sequence predicts token p + 1, and the loss is the mean of
// -log softmax(logits_p)[token_{p+1}] over every predicted position of every sequence (the last
// position of a sequence predicts nothing).
#pragma once

#include <Eigen/Core>

#include "model/llama_weights.h"
#include "model/token_batch.h"

namespace model {

// What the backward pass needs besides the logits: log-sum-exp of each row.
struct CrossEntropyCache {
  Eigen::VectorXd log_sum_exp;  // [T]; 0 for positions that predict nothing
  int64_t predicted = 0;        // positions counted in the mean
};

// logits: T x V, row t = column t of the batch. Throws model::Error when the shapes disagree or
// no sequence has two tokens. Computed in double from the float32 logits.
double cross_entropy_forward(const Matrix& logits, const TokenBatch& batch,
                             CrossEntropyCache* cache = nullptr);

}  // namespace model
