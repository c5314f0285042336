// The gradients of every base weight, for full-parameter training (pretrain.h): the same
// LlamaWeights structure holding dL/dW in place of W.
//
// LoRA training never needs them (the base model is frozen and its projections may live on FHE
// workers); only a float model trained in this process computes them, through
// LlamaModelT::weight_step (llama_model.h). For a projection y = W x over T positions with
// g = dL/dy, dL/dW = g x^T; for an RMSNorm, rms_norm_backward's dweight; for the embeddings,
// the input gradient of the first layer scattered to the rows of the batch's tokens.
#pragma once

#include "model/activations.h"
#include "model/llama_config.h"
#include "model/llama_weights.h"
#include "model/projection.h"

namespace model {

// Zeros shaped like a model of `config` (lm_head_weight empty when the embeddings are tied).
// Throws model::ModelError for an invalid config.
LlamaWeights zero_weight_gradients(const LlamaConfig& config);

// dw (d_out x d_in, row-major) += g (d_out x T) in^T (in: d_in x T). Float goes through
// oneDNN's sgemm, double through Eigen (and is rounded to float once per call). Throws
// model::ModelError when the shapes disagree.
template <typename Scalar>
void add_weight_gradient(const ActivationsT<Scalar>& g, const ActivationsT<Scalar>& in, Matrix& dw);

// Every tensor of `weights` with its Hugging Face name ("model.layers.0.self_attn.q_proj.weight",
// ...; lm_head.weight only when untied), as flat float arrays: what an optimizer steps.
struct NamedTensor {
  std::string name;
  float* data = nullptr;
  size_t size = 0;
};
std::vector<NamedTensor> named_tensors(LlamaWeights& weights);

}  // namespace model
