// Token embedding lookup: column t of x is row tokens[t] of the embedding table.
#pragma once

#include <cstdint>
#include <span>

#include "model/activations.h"
#include "model/llama_weights.h"

namespace model {

// x (H x T) from the [V, H] table. Ids must lie in [0, V) (validate_token_batch checks them).
void embedding_forward(const Matrix& table, std::span<const int32_t> tokens, Activations& x);

}  // namespace model
