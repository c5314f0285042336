#include "model/llama_model.h"

#include "model/embedding.h"
#include "model/error.h"
#include "model/rope.h"

namespace model {

LlamaModel::LlamaModel(std::shared_ptr<const LlamaWeights> weights,
                       std::unique_ptr<LinearBackend> backend)
    : weights_(std::move(weights)), backend_(std::move(backend)) {
  if (!weights_) throw Error("LlamaModel: no weights");
  if (!backend_) throw Error("LlamaModel: no linear backend");
}

Matrix LlamaModel::forward(const TokenBatch& batch, LlamaForwardCache* cache) {
  const LlamaConfig& config = weights_->config;
  validate_token_batch(batch, config);
  const RopeTable rope(config, batch.max_length());

  Activations x;
  embedding_forward(weights_->embed_tokens, batch.tokens(), x);
  if (cache) cache->layers.assign(static_cast<size_t>(config.num_hidden_layers), {});
  for (int64_t layer = 0; layer < config.num_hidden_layers; ++layer) {
    decoder_layer_forward(layer, weights_->layers[layer], config, rope, batch, *backend_, x,
                          cache ? &cache->layers[layer] : nullptr);
  }

  LlamaForwardCache local;
  LlamaForwardCache& c = cache ? *cache : local;
  if (cache) c.final_input = x;
  rms_norm_forward(x, weights_->norm, static_cast<float>(config.rms_norm_eps), c.final_norm,
                   &c.final_norm_stats);
  Activations logits;  // vocab x T: column t holds position t, the memory of a T x vocab row-major
  backend_->forward(ProjectionId::lm_head(), c.final_norm, logits);
  return logits.transpose();
}

double LlamaModel::loss(const TokenBatch& batch) {
  return cross_entropy_forward(forward(batch), batch);
}

}  // namespace model
