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

#include <algorithm>
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
  // Set by a forward pass that recomputes activations (set_recompute_activations): each entry
  // of `layers` then holds only its `input`, and the backward pass runs the layer's forward
  // again from it before going back through it.
  bool inputs_only = false;
};
using LlamaForwardCache = LlamaForwardCacheT<float>;

// The result of one training step's forward and backward pass.
template <typename Scalar>
struct LoraStepT {
  double loss = 0;  // mean next-token cross-entropy of the batch
  LoraGradientsT<Scalar> gradients;
};
using LoraStep = LoraStepT<float>;

// The result of one full-parameter training step (weight_gradients.h).
struct WeightStep {
  double loss = 0;         // mean next-token cross-entropy of the batch
  LlamaWeights gradients;  // dL/dW of every base weight, shaped like the model's
};

template <typename Scalar>
class LlamaModelT {
 public:
  // Throws model::ModelError when `weights` or `backend` is null.
  LlamaModelT(std::shared_ptr<const LlamaWeights> weights,
              std::unique_ptr<LinearBackendT<Scalar>> backend);

  const LlamaConfig& config() const { return weights_->config; }
  const LlamaWeights& weights() const { return *weights_; }
  LinearBackendT<Scalar>& backend() { return *backend_; }

  // The logits of every position: a T x vocab matrix whose row t is column t of the batch (the
  // sequences' positions in order). Throws model::ModelError for a batch validate_token_batch
  // refuses or an adapter that does not fit the model. `cache` (may be null) receives every
  // activation; `lora` (may be null) adapts the targeted projections.
  RowMatrixT<Scalar> forward(const TokenBatch& batch,
                             std::type_identity_t<LlamaForwardCacheT<Scalar>>* cache = nullptr,
                             const std::type_identity_t<LoraParamsT<Scalar>>* lora = nullptr);

  // Mean next-token cross-entropy over every predicted position of the batch
  // (cross_entropy.h), the LM head computed a chunk of positions at a time (below).
  double loss(const TokenBatch& batch,
              const std::type_identity_t<LoraParamsT<Scalar>>* lora = nullptr);

  // The backward pass from dlogits = dL/dlogits (T x vocab, as forward returned the logits)
  // through the LM head, the final norm and every layer, into the gradients of `lora`'s
  // parameters (lora_gradients.h; with lora.config().freeze_a, every A gradient stays empty).
  // `cache` must come from forward(batch, &cache, &lora). With per_example, the gradients hold
  // one share per sequence as well. Every frozen projection's W^T g goes through the backend.
  // Throws model::ModelError when the cache, dlogits or the adapter do not fit.
  LoraGradientsT<Scalar> backward(const TokenBatch& batch,
                                  const std::type_identity_t<LlamaForwardCacheT<Scalar>>& cache,
                                  const std::type_identity_t<RowMatrixT<Scalar>>& dlogits,
                                  const std::type_identity_t<LoraParamsT<Scalar>>& lora,
                                  bool per_example = false);

  // forward, cross-entropy and backward for one batch. The LM head, the loss and its gradient
  // run a chunk of positions at a time: the logits and their gradient of one chunk (vocab x
  // chunk each) fit in logits_budget_bytes, so a 128256-token vocabulary over 2048 positions
  // never holds 2 GB of logits. The chunks sum to the unchunked loss and gradients exactly when
  // the backend's products are exact per position (int8, encrypted; float GEMMs may round the
  // last bit differently for another column count).
  LoraStepT<Scalar> lora_step(const TokenBatch& batch,
                              const std::type_identity_t<LoraParamsT<Scalar>>& lora,
                              bool per_example = false);

  // forward, cross-entropy and backward into every base weight (embeddings, projections, norms,
  // LM head): the step of full-parameter training (pretrain.h), not of LoRA. Every product still
  // goes through the backend, which must compute with the weights being trained (a
  // FloatBackend over the same LlamaWeights object). Tied embeddings get the LM head's gradient
  // added to their own. Throws model::ModelError like lora_step.
  WeightStep weight_step(const TokenBatch& batch);

  // Bytes the logits and dlogits of one LM-head chunk may take (default 256 MiB; at least one
  // position per chunk).
  void set_logits_budget_bytes(int64_t bytes) { logits_budget_ = std::max<int64_t>(bytes, 1); }
  // Positions per LM-head chunk for a batch of `tokens`.
  int64_t head_chunk(int64_t tokens) const;

  // Activation recomputation (gradient checkpointing by layer), off by default. When on,
  // lora_step keeps only each decoder layer's input (H x T) from the forward pass and runs a
  // layer's forward again just before its backward, so the activations of one layer are alive
  // at a time instead of every layer's. Memory: the forward cache shrinks from about
  // (10 H + 2 kv + 3 I) x T values + the attention probabilities per layer to H x T per layer.
  // Cost: one more forward pass of every decoder layer per step (every frozen projection's
  // forward product is computed twice: on workers, three products per projection instead of
  // two). The gradients are the same bit for bit: the recomputed forward reads the same input
  // and, with exact products (int8, encrypted), gives the same integers; with float products it
  // repeats the same GEMMs of the same shapes.
  void set_recompute_activations(bool on) { recompute_ = on; }
  bool recompute_activations() const { return recompute_; }

 private:
  // Embeddings, every layer and the final norm: c.final_norm (and with keep_layers, everything
  // the backward pass needs: every activation, or with inputs_only each layer's input only).
  void hidden(const TokenBatch& batch, LlamaForwardCacheT<Scalar>& c, bool keep_layers,
              const LoraParamsT<Scalar>* lora, bool inputs_only = false);
  // The mean cross-entropy of the LM head over `norm` (H x T), chunk by chunk; with d_norm,
  // also dL/d(final norm).
  // With d_head, also dL/dW of the LM head (added into it).
  double head_loss(const TokenBatch& batch, const ActivationsT<Scalar>& norm,
                   ActivationsT<Scalar>* d_norm, Matrix* d_head = nullptr);
  // The gradients of `lora` (may be null: then none) and, with weight_grads, of every weight
  // below the LM head (final norm, layers, embeddings), added into it.
  LoraGradientsT<Scalar> backward_from_norm(const TokenBatch& batch,
                                            const LlamaForwardCacheT<Scalar>& cache,
                                            const ActivationsT<Scalar>& d_norm,
                                            const LoraParamsT<Scalar>* lora, bool per_example,
                                            LlamaWeights* weight_grads = nullptr);

  std::shared_ptr<const LlamaWeights> weights_;
  std::unique_ptr<LinearBackendT<Scalar>> backend_;
  int64_t logits_budget_ = int64_t{256} << 20;
  bool recompute_ = false;
};

using LlamaModel = LlamaModelT<float>;

}  // namespace model
