// The gradients of a LoRA adapter from one backward pass over a batch.
//
// `batch` is dL/dtheta for the batch loss L, the mean next-token cross-entropy over the P
// predicted positions of all sequences (cross_entropy.h). `per_example`, when requested, holds
// one entry per sequence: per_example[s] is sequence s's share of `batch`, the gradient of
// (sum of sequence s's token losses) / P. The entries sum to `batch` up to float rounding.
//
// Sequences never interact (attention stays within a sequence; every other op, including the
// per-token int8 quantization of activations and gradients, acts on one token at a time), so
// per_example[s] equals (P_s / P) times the gradient of sequence s's own mean loss run alone,
// P_s being its predicted positions: DP-SGD code that wants the latter rescales by P / P_s.
// The shares are formed by splitting the LoRA weight-gradient outer products by the sequences'
// columns (lora_branch.h), at the cost of one small extra product per sequence and projection.
#pragma once

#include <vector>

#include "model/lora_params.h"

namespace model {

template <typename Scalar>
struct LoraGradientsT {
  LoraParamsT<Scalar> batch;
  std::vector<LoraParamsT<Scalar>> per_example;  // empty unless requested
};

using LoraGradients = LoraGradientsT<float>;

}  // namespace model
