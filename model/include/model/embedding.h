// Token embedding lookup: column t of x is row tokens[t] of the embedding table.
//
// There is no backward pass to compute: the input is token ids (no gradient), and the table is
// part of the frozen base model (LoRA does not adapt it), so the model's backward pass stops at
// the first decoder layer's input.
#pragma once

#include <cstdint>
#include <span>

#include "model/activations.h"
#include "model/llama_weights.h"

namespace model {

// x (H x T) from the [V, H] float32 table (converted to Scalar). Ids must lie in [0, V)
// (validate_token_batch checks them).
template <typename Scalar>
void embedding_forward(const Matrix& table, std::span<const int32_t> tokens,
                       ActivationsT<Scalar>& x);

// The same from the model's weights: from embed_tokens, or, when it was not loaded
// (WeightLoadOptions::embeddings = false), row by row from the mapped checkpoint, converted to
// float32 exactly as loading would (the same values bit for bit).
template <typename Scalar>
void embedding_forward(const LlamaWeights& weights, std::span<const int32_t> tokens,
                       ActivationsT<Scalar>& x);

}  // namespace model
