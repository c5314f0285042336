// One Llama decoder layer, pre-norm, forward and backward:
//   h = x + o_proj(attention(rope(q_proj(n)), rope(k_proj(n)), v_proj(n))),
//       n = input_layernorm(x)
//   y = h + down_proj(silu(gate_proj(m)) * up_proj(m)),  m = post_attention_layernorm(h)
// Every projection goes through the LinearBackend (forward W x, backward W^T g); a projection
// targeted by a LoRA adapter adds its low-rank branch (lora_branch.h), computed here. q, k, v
// (one input) and gate, up (one input) go to the backend as groups (forward_group, and
// backward_group for the sum of their input gradients), the adapters' shares added after it.
//
// The backward pass is exact through every op: the residuals pass dL/dy on unchanged, and each
// block chains the backward of its norm, projections, RoPE, attention and SwiGLU (their
// headers). It produces dL/dx and the gradients of the layer's LoRA parameters.
#pragma once

#include <array>
#include <cstdint>
#include <type_traits>

#include "model/activations.h"
#include "model/attention.h"
#include "model/linear_backend.h"
#include "model/llama_config.h"
#include "model/llama_weights.h"
#include "model/lora_gradients.h"
#include "model/lora_params.h"
#include "model/rms_norm.h"
#include "model/rope.h"
#include "model/token_batch.h"

namespace model {

// The layer's activations, kept for the backward pass (all H x T or projection-wide x T).
template <typename Scalar>
struct DecoderLayerCacheT {
  ActivationsT<Scalar> input;      // x
  ActivationsT<Scalar> attn_norm;  // n
  RmsNormCacheT<Scalar> attn_norm_stats;
  ActivationsT<Scalar> q, k, v;  // projections; q and k after RoPE
  AttentionCacheT<Scalar> attention;
  ActivationsT<Scalar> attn_out;  // attention output, the input of o_proj
  ActivationsT<Scalar> mid;       // h
  ActivationsT<Scalar> mlp_norm;  // m
  RmsNormCacheT<Scalar> mlp_norm_stats;
  ActivationsT<Scalar> gate, up, act;  // act = silu(gate) * up, the input of down_proj
  // A x of each adapted projection, indexed by ProjectionKind (empty where there is no adapter).
  std::array<ActivationsT<Scalar>, kProjectionsPerLayer> lora_ax;
};
using DecoderLayerCache = DecoderLayerCacheT<float>;

// Replaces x (H x T) by the layer's output. `cache` may be null (then nothing is kept for a
// backward pass); `lora` may be null (no adapter) and must otherwise fit the model.
template <typename Scalar>
void decoder_layer_forward(int64_t layer, const LlamaLayerWeights& weights,
                           const LlamaConfig& config, const RopeTable& rope,
                           const TokenBatch& batch, LinearBackendT<Scalar>& backend,
                           ActivationsT<Scalar>& x,
                           std::type_identity_t<DecoderLayerCacheT<Scalar>>* cache = nullptr,
                           const std::type_identity_t<LoraParamsT<Scalar>>* lora = nullptr);

// The backward pass: dx holds dL/dy (H x T) on entry and dL/dx on return. `cache` must come
// from decoder_layer_forward of the same layer, batch and `lora`. When `lora` is not null,
// `grads` (not null, shaped like `lora`: LoraParamsT(config, lora->config(), !freeze_a)) receives
// the gradients of this layer's adapters, added into grads->batch and, for each sequence s,
// into grads->per_example[s] when per_example is not empty (it then holds one entry per
// sequence). When `weight_grads` is not null (full-parameter training, weight_gradients.h), the
// gradients of the layer's own weights, every projection's g x^T and both norms' weights, are
// added into it (shaped like `weights`). Throws model::ModelError when the cache or the
// gradients do not fit.
template <typename Scalar>
void decoder_layer_backward(int64_t layer, const LlamaLayerWeights& weights,
                            const LlamaConfig& config, const RopeTable& rope,
                            const TokenBatch& batch, LinearBackendT<Scalar>& backend,
                            const std::type_identity_t<DecoderLayerCacheT<Scalar>>& cache,
                            std::type_identity_t<ActivationsT<Scalar>>& dx,
                            const std::type_identity_t<LoraParamsT<Scalar>>* lora = nullptr,
                            std::type_identity_t<LoraGradientsT<Scalar>>* grads = nullptr,
                            LlamaLayerWeights* weight_grads = nullptr);

}  // namespace model
