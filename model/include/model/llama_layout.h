// The tensors a Hugging Face Llama checkpoint holds for a given config: names and shapes.
//
// Per model:  model.embed_tokens.weight [V, H], model.norm.weight [H],
//             lm_head.weight [V, H] (absent when tie_word_embeddings)
// Per layer i (prefix model.layers.{i}.):
//   input_layernorm.weight [H]            post_attention_layernorm.weight [H]
//   self_attn.q_proj.weight [A*D, H]      self_attn.k_proj.weight [K*D, H]
//   self_attn.v_proj.weight [K*D, H]      self_attn.o_proj.weight [H, A*D]
//   mlp.gate_proj.weight [I, H]           mlp.up_proj.weight [I, H]   mlp.down_proj.weight [H, I]
// with V vocab, H hidden, I intermediate, A heads, K kv-heads, D head_dim. Projection weights
// are [d_out, d_in] (torch.nn.Linear), so y = W x.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "model/llama_config.h"
#include "model/tensor_store.h"

namespace model {

struct ExpectedTensor {
  std::string name;
  std::vector<int64_t> shape;
};

// Every tensor of the checkpoint in Hugging Face order (embeddings, layer 0, ..., norm, head).
std::vector<ExpectedTensor> llama_tensor_layout(const LlamaConfig& config);

// "model.layers.3.self_attn.q_proj.weight" for (3, "self_attn.q_proj.weight").
std::string llama_layer_tensor_name(int64_t layer, std::string_view suffix);

// The seven frozen projections of one decoder layer.
struct ProjectionShape {
  std::string name;  // "q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"
  std::string suffix;  // the tensor name after "model.layers.{i}.", e.g. "self_attn.q_proj.weight"
  int64_t d_out = 0;
  int64_t d_in = 0;
};
std::vector<ProjectionShape> llama_projection_shapes(const LlamaConfig& config);

// True for buffers that some checkpoints carry but that are not weights (rotary_emb.inv_freq).
bool is_ignored_llama_buffer(std::string_view name);

// Checks `store` against the layout without reading any weight: every expected tensor exists
// with exactly the expected shape and a float dtype, and there is no other tensor (ignored
// buffers aside; a tied model may still carry an lm_head.weight of the right shape, which is
// ignored as transformers ignores it). Throws model::ModelError naming file and tensor.
void check_llama_checkpoint(const TensorStore& store, const LlamaConfig& config);

}  // namespace model
