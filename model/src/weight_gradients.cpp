#include "model/weight_gradients.h"

#include <oneapi/dnnl/dnnl.h>

#include <string>

#include "model/error.h"
#include "model/llama_layout.h"

namespace model {

LlamaWeights zero_weight_gradients(const LlamaConfig& config) {
  validate_llama_config(config, "weight gradients");
  LlamaWeights g;
  g.config = config;
  const int64_t h = config.hidden_size;
  g.embed_tokens = Matrix::Zero(config.vocab_size, h);
  const auto shapes = llama_projection_shapes(config);
  g.layers.resize(static_cast<size_t>(config.num_hidden_layers));
  for (LlamaLayerWeights& layer : g.layers) {
    layer.input_layernorm = Vector::Zero(h);
    layer.post_attention_layernorm = Vector::Zero(h);
    for (size_t p = 0; p < shapes.size(); ++p) {
      layer_projection_weight(layer, static_cast<ProjectionKind>(p)) =
          Matrix::Zero(shapes[p].d_out, shapes[p].d_in);
    }
  }
  g.norm = Vector::Zero(h);
  if (!config.tie_word_embeddings) g.lm_head_weight = Matrix::Zero(config.vocab_size, h);
  return g;
}

template <>
void add_weight_gradient<float>(const ActivationsT<float>& g, const ActivationsT<float>& in,
                                Matrix& dw) {
  if (g.cols() != in.cols() || dw.rows() != g.rows() || dw.cols() != in.rows()) {
    throw ModelError("weight gradient: g " + std::to_string(g.rows()) + " x " +
                     std::to_string(g.cols()) + ", input " + std::to_string(in.rows()) + " x " +
                     std::to_string(in.cols()) + " and dW " + std::to_string(dw.rows()) + " x " +
                     std::to_string(dw.cols()) + " do not fit");
  }
  if (g.cols() == 0 || dw.size() == 0) return;
  // Row-major dW (d_out x d_in) += G I^T: column-major G (d_out x T) is row-major G^T, and
  // column-major I (d_in x T) is row-major I^T (T x d_in).
  if (dnnl_sgemm('T', 'N', dw.rows(), dw.cols(), g.cols(), 1.0f, g.data(), g.rows(), in.data(),
                 in.rows(), 1.0f, dw.data(), dw.cols()) != dnnl_success) {
    throw ModelError("weight gradient: sgemm failed");
  }
}

template <>
void add_weight_gradient<double>(const ActivationsT<double>& g, const ActivationsT<double>& in,
                                 Matrix& dw) {
  if (g.cols() != in.cols() || dw.rows() != g.rows() || dw.cols() != in.rows()) {
    throw ModelError("weight gradient: shapes do not fit");
  }
  dw += (g * in.transpose()).cast<float>();
}

std::vector<NamedTensor> named_tensors(LlamaWeights& w) {
  std::vector<NamedTensor> out;
  const auto add = [&](std::string name, auto& m) {
    out.push_back({std::move(name), m.data(), static_cast<size_t>(m.size())});
  };
  // llama_tensor_layout's order and names.
  add("model.embed_tokens.weight", w.embed_tokens);
  const auto shapes = llama_projection_shapes(w.config);
  for (size_t layer = 0; layer < w.layers.size(); ++layer) {
    LlamaLayerWeights& l = w.layers[layer];
    const auto name = [&](const std::string& suffix) {
      return llama_layer_tensor_name(static_cast<int64_t>(layer), suffix);
    };
    add(name("input_layernorm.weight"), l.input_layernorm);
    for (size_t p = 0; p < 4; ++p) {
      add(name(shapes[p].suffix), layer_projection_weight(l, static_cast<ProjectionKind>(p)));
    }
    add(name("post_attention_layernorm.weight"), l.post_attention_layernorm);
    for (size_t p = 4; p < shapes.size(); ++p) {
      add(name(shapes[p].suffix), layer_projection_weight(l, static_cast<ProjectionKind>(p)));
    }
  }
  add("model.norm.weight", w.norm);
  if (!w.config.tie_word_embeddings) add("lm_head.weight", w.lm_head_weight);
  return out;
}

}  // namespace model
