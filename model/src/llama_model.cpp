#include "model/llama_model.h"

#include <algorithm>
#include <span>
#include <string>
#include <vector>

#include "model/cross_entropy.h"
#include "model/embedding.h"
#include "model/error.h"
#include "model/rope.h"
#include "model/weight_gradients.h"

namespace model {

template <typename Scalar>
LlamaModelT<Scalar>::LlamaModelT(std::shared_ptr<const LlamaWeights> weights,
                                 std::unique_ptr<LinearBackendT<Scalar>> backend)
    : weights_(std::move(weights)), backend_(std::move(backend)) {
  if (!weights_) throw ModelError("LlamaModel: no weights");
  if (!backend_) throw ModelError("LlamaModel: no linear backend");
}

template <typename Scalar>
RowMatrixT<Scalar> LlamaModelT<Scalar>::forward(
    const TokenBatch& batch, std::type_identity_t<LlamaForwardCacheT<Scalar>>* cache,
    const std::type_identity_t<LoraParamsT<Scalar>>* lora) {
  LlamaForwardCacheT<Scalar> local;
  LlamaForwardCacheT<Scalar>& c = cache ? *cache : local;
  hidden(batch, c, /*keep_layers=*/cache != nullptr, lora);
  // vocab x T: column t holds position t, the memory of a T x vocab row-major matrix.
  ActivationsT<Scalar> logits;
  backend_->forward(ProjectionId::lm_head(), c.final_norm, logits);
  return logits.transpose();
}

template <typename Scalar>
int64_t LlamaModelT<Scalar>::head_chunk(int64_t tokens) const {
  const int64_t per_token = weights_->config.vocab_size * static_cast<int64_t>(sizeof(Scalar)) * 2;
  return std::clamp<int64_t>(logits_budget_ / std::max<int64_t>(per_token, 1), 1,
                             std::max<int64_t>(tokens, 1));
}

template <typename Scalar>
void LlamaModelT<Scalar>::hidden(const TokenBatch& batch, LlamaForwardCacheT<Scalar>& c,
                                 bool keep_layers, const LoraParamsT<Scalar>* lora,
                                 bool inputs_only) {
  const LlamaConfig& config = weights_->config;
  validate_token_batch(batch, config);
  if (lora) lora->check_fits(config);
  const RopeTable rope(config, batch.max_length());

  ActivationsT<Scalar> x;
  embedding_forward(*weights_, batch.tokens(), x);
  if (keep_layers) c.layers.assign(static_cast<size_t>(config.num_hidden_layers), {});
  inputs_only = inputs_only && keep_layers;
  c.inputs_only = inputs_only;
  for (int64_t layer = 0; layer < config.num_hidden_layers; ++layer) {
    if (inputs_only) c.layers[layer].input = x;
    decoder_layer_forward(layer, weights_->layers[layer], config, rope, batch, *backend_, x,
                          keep_layers && !inputs_only ? &c.layers[layer] : nullptr, lora);
  }
  if (keep_layers) c.final_input = x;
  rms_norm_forward(x, weights_->norm.cast<Scalar>(), static_cast<Scalar>(config.rms_norm_eps),
                   c.final_norm, &c.final_norm_stats);
}

template <typename Scalar>
double LlamaModelT<Scalar>::head_loss(const TokenBatch& batch, const ActivationsT<Scalar>& norm,
                                      ActivationsT<Scalar>* d_norm, Matrix* d_head) {
  const std::vector<int32_t> labels = next_token_labels(batch, weights_->config.vocab_size);
  int64_t predicted = 0;
  for (const int32_t l : labels) predicted += l >= 0;
  if (predicted == 0) throw ModelError("cross-entropy: no sequence of the batch has two tokens");
  const int64_t tokens = norm.cols();
  const int64_t chunk = head_chunk(tokens);
  if (d_norm) d_norm->resize(norm.rows(), tokens);
  const double per_position = 1.0 / static_cast<double>(predicted);
  double total = 0;
  ActivationsT<Scalar> x, logits, dlogits, dx;
  for (int64_t t0 = 0; t0 < tokens; t0 += chunk) {
    const int64_t n = std::min(chunk, tokens - t0);
    const std::span<const int32_t> chunk_labels(labels.data() + t0, static_cast<size_t>(n));
    if (n != tokens) x = norm.middleCols(t0, n);
    const ActivationsT<Scalar>& input = n == tokens ? norm : x;
    backend_->forward(ProjectionId::lm_head(), input, logits);
    cross_entropy_columns<Scalar>(logits, chunk_labels, per_position, d_norm ? &dlogits : nullptr,
                                  total);
    if (d_norm) {
      backend_->backward(ProjectionId::lm_head(), dlogits, dx);
      d_norm->middleCols(t0, n) = dx;
      if (d_head) add_weight_gradient(dlogits, input, *d_head);
    }
  }
  return total / static_cast<double>(predicted);
}

template <typename Scalar>
double LlamaModelT<Scalar>::loss(const TokenBatch& batch,
                                 const std::type_identity_t<LoraParamsT<Scalar>>* lora) {
  LlamaForwardCacheT<Scalar> c;
  hidden(batch, c, /*keep_layers=*/false, lora);
  return head_loss(batch, c.final_norm, nullptr);
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
    throw ModelError(
        "LlamaModel backward: the cache does not come from a forward pass of this batch");
  }
  if (dlogits.rows() != tokens || dlogits.cols() != config.vocab_size) {
    throw ModelError("LlamaModel backward: dL/dlogits is " + std::to_string(dlogits.rows()) +
                     " x " + std::to_string(dlogits.cols()) + ", the logits " +
                     std::to_string(tokens) + " x " + std::to_string(config.vocab_size));
  }
  // LM head: the logits are (W_head * final_norm)^T, so dL/dfinal_norm = W_head^T dlogits^T.
  const ActivationsT<Scalar> dlogits_columns = dlogits.transpose();  // vocab x T
  ActivationsT<Scalar> d_norm;
  backend_->backward(ProjectionId::lm_head(), dlogits_columns, d_norm);
  return backward_from_norm(batch, cache, d_norm, &lora, per_example);
}

template <typename Scalar>
LoraGradientsT<Scalar> LlamaModelT<Scalar>::backward_from_norm(
    const TokenBatch& batch, const LlamaForwardCacheT<Scalar>& cache,
    const ActivationsT<Scalar>& d_norm, const LoraParamsT<Scalar>* lora, bool per_example,
    LlamaWeights* weight_grads) {
  const LlamaConfig& config = weights_->config;
  const RopeTable rope(config, batch.max_length());
  LoraGradientsT<Scalar> grads;
  if (lora) {
    grads.batch = LoraParamsT<Scalar>(config, lora->config(), /*with_a=*/!lora->config().freeze_a);
    if (per_example) {
      grads.per_example.assign(static_cast<size_t>(batch.sequence_count()), grads.batch);
    }
  }
  LoraGradientsT<Scalar>* lora_grads = lora ? &grads : nullptr;
  ActivationsT<Scalar> dx;
  if (weight_grads) {
    VectorT<Scalar> dw = VectorT<Scalar>::Zero(weights_->norm.size());
    rms_norm_backward(cache.final_input, weights_->norm.cast<Scalar>(), cache.final_norm_stats,
                      d_norm, dx, &dw);
    weight_grads->norm += dw.template cast<float>();
  } else {
    rms_norm_backward(cache.final_input, weights_->norm.cast<Scalar>(), cache.final_norm_stats,
                      d_norm, dx);
  }
  const auto layer_grads = [&](int64_t layer) -> LlamaLayerWeights* {
    return weight_grads ? &weight_grads->layers[static_cast<size_t>(layer)] : nullptr;
  };
  DecoderLayerCacheT<Scalar> recomputed;  // one layer's activations at a time (inputs_only)
  for (int64_t layer = config.num_hidden_layers - 1; layer >= 0; --layer) {
    const LlamaLayerWeights& w = weights_->layers[layer];
    if (!cache.inputs_only) {
      decoder_layer_backward(layer, w, config, rope, batch, *backend_, cache.layers[layer], dx,
                             lora, lora_grads, layer_grads(layer));
      continue;
    }
    const ActivationsT<Scalar>& input = cache.layers[layer].input;
    if (input.cols() != batch.total_tokens() || input.rows() != config.hidden_size) {
      throw ModelError("LlamaModel backward: the cache holds no input of layer " +
                       std::to_string(layer) + " for this batch");
    }
    ActivationsT<Scalar> x = input;
    decoder_layer_forward(layer, w, config, rope, batch, *backend_, x, &recomputed, lora);
    decoder_layer_backward(layer, w, config, rope, batch, *backend_, recomputed, dx, lora,
                           lora_grads, layer_grads(layer));
  }
  // dx is now dL/d(embeddings): frozen in LoRA training, so the pass ends there; full-parameter
  // training scatters it to the rows of the batch's tokens.
  if (weight_grads) {
    const auto tokens = batch.tokens();
    for (int64_t t = 0; t < dx.cols(); ++t) {
      weight_grads->embed_tokens.row(tokens[static_cast<size_t>(t)]) +=
          dx.col(t).transpose().template cast<float>();
    }
  }
  return grads;
}

template <typename Scalar>
LoraStepT<Scalar> LlamaModelT<Scalar>::lora_step(
    const TokenBatch& batch, const std::type_identity_t<LoraParamsT<Scalar>>& lora,
    bool per_example) {
  lora.check_fits(weights_->config);
  LlamaForwardCacheT<Scalar> cache;
  hidden(batch, cache, /*keep_layers=*/true, &lora, /*inputs_only=*/recompute_);
  LoraStepT<Scalar> step;
  ActivationsT<Scalar> d_norm;
  step.loss = head_loss(batch, cache.final_norm, &d_norm);
  step.gradients = backward_from_norm(batch, cache, d_norm, &lora, per_example);
  return step;
}

template <typename Scalar>
WeightStep LlamaModelT<Scalar>::weight_step(const TokenBatch& batch) {
  const LlamaConfig& config = weights_->config;
  if (weights_->layers.size() != static_cast<size_t>(config.num_hidden_layers) ||
      weights_->embed_tokens.rows() != config.vocab_size) {
    throw ModelError("full-parameter step: the model's weights are not all loaded");
  }
  LlamaForwardCacheT<Scalar> cache;
  hidden(batch, cache, /*keep_layers=*/true, nullptr, /*inputs_only=*/recompute_);
  WeightStep step;
  step.gradients = zero_weight_gradients(config);
  Matrix& d_head =
      config.tie_word_embeddings ? step.gradients.embed_tokens : step.gradients.lm_head_weight;
  ActivationsT<Scalar> d_norm;
  step.loss = head_loss(batch, cache.final_norm, &d_norm, &d_head);
  backward_from_norm(batch, cache, d_norm, nullptr, false, &step.gradients);
  return step;
}

template class LlamaModelT<float>;
template class LlamaModelT<double>;

}  // namespace model
