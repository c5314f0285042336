#include "model/llama_model.h"

#include <string>

#include "model/embedding.h"
#include "model/error.h"
#include "model/rope.h"

namespace model {

template <typename Scalar>
LlamaModelT<Scalar>::LlamaModelT(std::shared_ptr<const LlamaWeights> weights,
                                 std::unique_ptr<LinearBackendT<Scalar>> backend)
    : weights_(std::move(weights)), backend_(std::move(backend)) {
  if (!weights_) throw Error("LlamaModel: no weights");
  if (!backend_) throw Error("LlamaModel: no linear backend");
}

template <typename Scalar>
RowMatrixT<Scalar> LlamaModelT<Scalar>::forward(
    const TokenBatch& batch, std::type_identity_t<LlamaForwardCacheT<Scalar>>* cache,
    const std::type_identity_t<LoraParamsT<Scalar>>* lora) {
  const LlamaConfig& config = weights_->config;
  validate_token_batch(batch, config);
  if (lora) lora->check_fits(config);
  const RopeTable rope(config, batch.max_length());

  ActivationsT<Scalar> x;
  embedding_forward(weights_->embed_tokens, batch.tokens(), x);
  if (cache) cache->layers.assign(static_cast<size_t>(config.num_hidden_layers), {});
  for (int64_t layer = 0; layer < config.num_hidden_layers; ++layer) {
    decoder_layer_forward(layer, weights_->layers[layer], config, rope, batch, *backend_, x,
                          cache ? &cache->layers[layer] : nullptr, lora);
  }

  LlamaForwardCacheT<Scalar> local;
  LlamaForwardCacheT<Scalar>& c = cache ? *cache : local;
  if (cache) c.final_input = x;
  rms_norm_forward(x, weights_->norm.cast<Scalar>(), static_cast<Scalar>(config.rms_norm_eps),
                   c.final_norm, &c.final_norm_stats);
  // vocab x T: column t holds position t, the memory of a T x vocab row-major matrix.
  ActivationsT<Scalar> logits;
  backend_->forward(ProjectionId::lm_head(), c.final_norm, logits);
  return logits.transpose();
}

template <typename Scalar>
double LlamaModelT<Scalar>::loss(const TokenBatch& batch,
                                 const std::type_identity_t<LoraParamsT<Scalar>>* lora) {
  return cross_entropy_forward<Scalar>(forward(batch, nullptr, lora), batch);
}

template <typename Scalar>
LoraGradientsT<Scalar> LlamaModelT<Scalar>::backward(
    const TokenBatch& batch, const std::type_identity_t<LlamaForwardCacheT<Scalar>>& cache,
    const std::type_identity_t<RowMatrixT<Scalar>>& dlogits,
    const std::type_identity_t<LoraParamsT<Scalar>>& lora, bool per_example) {
  const LlamaConfig& config = weights_->config;
  const int64_t tokens = batch.total_tokens();
  lora.check_fits(config);
  if (static_cast<int64_t>(cache.layers.size()) != config.num_hidden_layers ||
      cache.final_input.cols() != tokens || cache.final_norm.cols() != tokens) {
    throw Error("LlamaModel backward: the cache does not come from a forward pass of this batch");
  }
  if (dlogits.rows() != tokens || dlogits.cols() != config.vocab_size) {
    throw Error("LlamaModel backward: dL/dlogits is " + std::to_string(dlogits.rows()) + " x " +
                std::to_string(dlogits.cols()) + ", the logits " + std::to_string(tokens) + " x " +
                std::to_string(config.vocab_size));
  }
  const RopeTable rope(config, batch.max_length());

  LoraGradientsT<Scalar> grads;
  grads.batch = LoraParamsT<Scalar>(config, lora.config(), /*with_a=*/!lora.config().freeze_a);
  if (per_example) {
    grads.per_example.assign(static_cast<size_t>(batch.sequence_count()), grads.batch);
  }

  // LM head: the logits are (W_head * final_norm)^T, so dL/dfinal_norm = W_head^T dlogits^T.
  const ActivationsT<Scalar> dlogits_columns = dlogits.transpose();  // vocab x T
  ActivationsT<Scalar> d_norm, dx;
  backend_->backward(ProjectionId::lm_head(), dlogits_columns, d_norm);
  rms_norm_backward(cache.final_input, weights_->norm.cast<Scalar>(), cache.final_norm_stats,
                    d_norm, dx);
  for (int64_t layer = config.num_hidden_layers - 1; layer >= 0; --layer) {
    decoder_layer_backward(layer, weights_->layers[layer], config, rope, batch, *backend_,
                           cache.layers[layer], dx, &lora, &grads);
  }
  // dx is now dL/d(embeddings): the embeddings are frozen, so the pass ends here.
  return grads;
}

template <typename Scalar>
LoraStepT<Scalar> LlamaModelT<Scalar>::lora_step(
    const TokenBatch& batch, const std::type_identity_t<LoraParamsT<Scalar>>& lora,
    bool per_example) {
  LlamaForwardCacheT<Scalar> cache;
  const RowMatrixT<Scalar> logits = forward(batch, &cache, &lora);
  CrossEntropyCache ce;
  LoraStepT<Scalar> step;
  step.loss = cross_entropy_forward<Scalar>(logits, batch, &ce);
  RowMatrixT<Scalar> dlogits;
  cross_entropy_backward<Scalar>(logits, batch, ce, 1.0, dlogits);
  step.gradients = backward(batch, cache, dlogits, lora, per_example);
  return step;
}

template class LlamaModelT<float>;
template class LlamaModelT<double>;

}  // namespace model
