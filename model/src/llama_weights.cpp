#include "model/llama_weights.h"

#include <span>
#include <string>

#include "model/llama_layout.h"

namespace model {
namespace {

Matrix read_matrix(const TensorStore& store, const std::string& name, int64_t rows, int64_t cols) {
  Matrix m(rows, cols);
  store.read_f32(name, {rows, cols}, std::span<float>(m.data(), static_cast<size_t>(m.size())));
  store.release(name);  // the float32 copy is what stays: keep RSS near the f32 weights
  return m;
}

Vector read_vector(const TensorStore& store, const std::string& name, int64_t size) {
  Vector v(size);
  store.read_f32(name, {size}, std::span<float>(v.data(), static_cast<size_t>(v.size())));
  store.release(name);
  return v;
}

}  // namespace

LlamaWeights load_llama_weights(const TensorStore& store, const LlamaConfig& config,
                                WeightLoadOptions options) {
  check_llama_checkpoint(store, config);
  const int64_t h = config.hidden_size;
  LlamaWeights w;
  w.config = config;
  if (options.embeddings) {
    w.embed_tokens = read_matrix(store, "model.embed_tokens.weight", config.vocab_size, h);
  }
  const auto projections = llama_projection_shapes(config);
  for (int64_t layer = 0; layer < config.num_hidden_layers; ++layer) {
    LlamaLayerWeights lw;
    const auto proj = [&](size_t p) {
      if (!options.decoder_projections) return Matrix();
      return read_matrix(store, llama_layer_tensor_name(layer, projections[p].suffix),
                         projections[p].d_out, projections[p].d_in);
    };
    lw.input_layernorm =
        read_vector(store, llama_layer_tensor_name(layer, "input_layernorm.weight"), h);
    lw.q_proj = proj(0);
    lw.k_proj = proj(1);
    lw.v_proj = proj(2);
    lw.o_proj = proj(3);
    lw.post_attention_layernorm =
        read_vector(store, llama_layer_tensor_name(layer, "post_attention_layernorm.weight"), h);
    lw.gate_proj = proj(4);
    lw.up_proj = proj(5);
    lw.down_proj = proj(6);
    w.layers.push_back(std::move(lw));
  }
  w.norm = read_vector(store, "model.norm.weight", h);
  if (!config.tie_word_embeddings && options.embeddings) {
    w.lm_head_weight = read_matrix(store, "lm_head.weight", config.vocab_size, h);
  }
  return w;
}

LlamaWeights load_llama_weights(const std::filesystem::path& dir, WeightLoadOptions options) {
  const LlamaConfig config = load_llama_config(dir);
  auto store = std::make_shared<const TensorStore>(TensorStore::open(dir));
  LlamaWeights w = load_llama_weights(*store, config, options);
  if (!options.embeddings) w.store = std::move(store);
  return w;
}

bool has_decoder_projections(const LlamaWeights& weights) {
  return weights.layers.empty() || weights.layers.front().q_proj.size() > 0;
}

}  // namespace model
