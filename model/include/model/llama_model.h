// A Llama model for causal language modelling (Hugging Face LlamaForCausalLM semantics) over a
// LinearBackend: embeddings, decoder layers, final RMSNorm and LM head, every frozen projection
// computed by the backend, optionally adapted by LoRA (lora_params.h), with an exact backward
// pass from the loss to the LoRA parameters.
//
//   auto weights = std::make_shared<const model::LlamaWeights>(model::load_llama_weights(dir));
//   model::LlamaModel llama(weights, std::make_unique<model::FloatBackend>(weights));
//   model::Matrix logits = llama.forward(model::TokenBatch({{1, 15, 27}}));  // 3 x vocab
//
//   std::mt19937_64 rng(seed);
//   model::LoraParams lora = model::init_lora_params(llama.config(), {}, rng);
//   model::LoraStep step = llama.lora_step(batch, lora, /*per_example=*/true);
//   // step.loss, step.gradients.batch, step.gradients.per_example[s]
//
// LlamaModel computes in float32; LlamaModelT<double> (with a DoubleBackend) is its twin in
// double precision, for gradient checks.
#pragma once

#include <memory>
#include <type_traits>
#include <vector>

#include "model/activations.h"
#include "model/cross_entropy.h"
#include "model/decoder_layer.h"
#include "model/linear_backend.h"
#include "model/llama_weights.h"
#include "model/lora_gradients.h"
#include "model/lora_params.h"
#include "model/rms_norm.h"
#include "model/token_batch.h"

namespace model {

// Every activation of a forward pass, for the backward pass.
template <typename Scalar>
struct LlamaForwardCacheT {
  std::vector<DecoderLayerCacheT<Scalar>> layers;
  ActivationsT<Scalar> final_input;  // output of the last layer (H x T)
  RmsNormCacheT<Scalar> final_norm_stats;
  ActivationsT<Scalar> final_norm;  // input of the LM head (H x T)
};
using LlamaForwardCache = LlamaForwardCacheT<float>;

// The result of one training step's forward and backward pass.
template <typename Scalar>
struct LoraStepT {
  double loss = 0;  // mean next-token cross-entropy of the batch
  LoraGradientsT<Scalar> gradients;
};
using LoraStep = LoraStepT<float>;

template <typename Scalar>
class LlamaModelT {
 public:
  // Throws model::Error when `weights` or `backend` is null.
  LlamaModelT(std::shared_ptr<const LlamaWeights> weights,
              std::unique_ptr<LinearBackendT<Scalar>> backend);

  const LlamaConfig& config() const { return weights_->config; }
  const LlamaWeights& weights() const { return *weights_; }
  LinearBackendT<Scalar>& backend() { return *backend_; }

  // The logits of every position: a T x vocab matrix whose row t is column t of the batch (the
  // sequences' positions in order). Throws model::Error for a batch validate_token_batch
  // refuses or an adapter that does not fit the model. `cache` (may be null) receives every
  // activation; `lora` (may be null) adapts the targeted projections.
  RowMatrixT<Scalar> forward(const TokenBatch& batch,
                             std::type_identity_t<LlamaForwardCacheT<Scalar>>* cache = nullptr,
                             const std::type_identity_t<LoraParamsT<Scalar>>* lora = nullptr);

  // Mean next-token cross-entropy over every predicted position of the batch
  // (cross_entropy.h).
  double loss(const TokenBatch& batch,
              const std::type_identity_t<LoraParamsT<Scalar>>* lora = nullptr);

  // The backward pass from dlogits = dL/dlogits (T x vocab, as forward returned the logits)
  // through the LM head, the final norm and every layer, into the gradients of `lora`'s
  // parameters (lora_gradients.h; with lora.config().freeze_a, every A gradient stays empty).
  // `cache` must come from forward(batch, &cache, &lora). With per_example, the gradients hold
  // one share per sequence as well. Every frozen projection's W^T g goes through the backend.
  // Throws model::Error when the cache, dlogits or the adapter do not fit.
  LoraGradientsT<Scalar> backward(const TokenBatch& batch,
                                  const std::type_identity_t<LlamaForwardCacheT<Scalar>>& cache,
                                  const std::type_identity_t<RowMatrixT<Scalar>>& dlogits,
                                  const std::type_identity_t<LoraParamsT<Scalar>>& lora,
                                  bool per_example = false);

  // forward, cross-entropy and backward for one batch.
  LoraStepT<Scalar> lora_step(const TokenBatch& batch,
                              const std::type_identity_t<LoraParamsT<Scalar>>& lora,
                              bool per_example = false);

 private:
  std::shared_ptr<const LlamaWeights> weights_;
  std::unique_ptr<LinearBackendT<Scalar>> backend_;
};

using LlamaModel = LlamaModelT<float>;

}  // namespace model
