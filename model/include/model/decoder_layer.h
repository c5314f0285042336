// One Llama decoder layer, pre-norm:
//   h = x + o_proj(attention(rope(q_proj(n)), rope(k_proj(n)), v_proj(n))),  n = input_layernorm(x)
//   y = h + down_proj(silu(gate_proj(m)) * up_proj(m)),                        m =
//   post_attention_layernorm(h)
// Every projection goes through the LinearBackend.
#pragma once

#include <cstdint>

#include "model/activations.h"
#include "model/attention.h"
#include "model/linear_backend.h"
#include "model/llama_config.h"
#include "model/llama_weights.h"
#include "model/rms_norm.h"
#include "model/rope.h"
#include "model/token_batch.h"

namespace model {

// The layer's activations, kept for the backward pass (all H x T or projection-wide x T).
struct DecoderLayerCache {
  Activations input;      // x
  Activations attn_norm;  // n
  RmsNormCache attn_norm_stats;
  Activations q, k, v;  // projections; q and k after RoPE
  AttentionCache attention;
  Activations attn_out;  // attention output, the input of o_proj
  Activations mid;       // h
  Activations mlp_norm;  // m
  RmsNormCache mlp_norm_stats;
  Activations gate, up, act;  // act = silu(gate) * up, the input of down_proj
};

// Replaces x (H x T) by the layer's output. `cache` may be null.
void decoder_layer_forward(int64_t layer, const LlamaLayerWeights& weights,
                           const LlamaConfig& config, const RopeTable& rope,
                           const TokenBatch& batch, LinearBackend& backend, Activations& x,
                           DecoderLayerCache* cache = nullptr);

}  // namespace model
