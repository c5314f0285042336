// A Llama model for causal language modelling (Hugging Face LlamaForCausalLM semantics) over a
// LinearBackend: embeddings, decoder layers, final RMSNorm and LM head, in float32 with Eigen,
// every frozen projection computed by the backend.
//
//   auto weights = std::make_shared<const model::LlamaWeights>(model::load_llama_weights(dir));
//   model::LlamaModel llama(weights, std::make_unique<model::FloatBackend>(weights));
//   model::Matrix logits = llama.forward(model::TokenBatch({{1, 15, 27}}));  // 3 x vocab
#pragma once

#include <memory>
#include <vector>

#include "model/activations.h"
#include "model/cross_entropy.h"
#include "model/decoder_layer.h"
#include "model/linear_backend.h"
#include "model/llama_weights.h"
#include "model/rms_norm.h"
#include "model/token_batch.h"

namespace model {

// Every activation of a forward pass, for the backward pass.
struct LlamaForwardCache {
  std::vector<DecoderLayerCache> layers;
  Activations final_input;  // output of the last layer (H x T)
  RmsNormCache final_norm_stats;
  Activations final_norm;  // input of the LM head (H x T)
};

class LlamaModel {
 public:
  // Throws model::Error when `backend` is null.
  LlamaModel(std::shared_ptr<const LlamaWeights> weights, std::unique_ptr<LinearBackend> backend);

  const LlamaConfig& config() const { return weights_->config; }
  const LlamaWeights& weights() const { return *weights_; }
  LinearBackend& backend() { return *backend_; }

  // The logits of every position: a T x vocab matrix whose row t is column t of the batch (the
  // sequences' positions in order). Throws model::Error for a batch validate_token_batch
  // refuses. `cache` (may be null) receives every activation.
  Matrix forward(const TokenBatch& batch, LlamaForwardCache* cache = nullptr);

  // Mean next-token cross-entropy over every predicted position of the batch
  // (cross_entropy.h).
  double loss(const TokenBatch& batch);

 private:
  std::shared_ptr<const LlamaWeights> weights_;
  std::unique_ptr<LinearBackend> backend_;
};

}  // namespace model
