#include "model/llama_layout.h"

#include <set>

#include "model/error.h"

namespace model {
namespace {

constexpr char kLmHead[] = "lm_head.weight";

}  // namespace

std::string llama_layer_tensor_name(int64_t layer, std::string_view suffix) {
  return "model.layers." + std::to_string(layer) + "." + std::string(suffix);
}

std::vector<ProjectionShape> llama_projection_shapes(const LlamaConfig& c) {
  const int64_t h = c.hidden_size;
  const int64_t i = c.intermediate_size;
  return {
      {"q_proj", "self_attn.q_proj.weight", c.q_dim(), h},
      {"k_proj", "self_attn.k_proj.weight", c.kv_dim(), h},
      {"v_proj", "self_attn.v_proj.weight", c.kv_dim(), h},
      {"o_proj", "self_attn.o_proj.weight", h, c.q_dim()},
      {"gate_proj", "mlp.gate_proj.weight", i, h},
      {"up_proj", "mlp.up_proj.weight", i, h},
      {"down_proj", "mlp.down_proj.weight", h, i},
  };
}

std::vector<ExpectedTensor> llama_tensor_layout(const LlamaConfig& c) {
  const int64_t h = c.hidden_size;
  std::vector<ExpectedTensor> out;
  out.push_back({"model.embed_tokens.weight", {c.vocab_size, h}});
  const auto projections = llama_projection_shapes(c);
  for (int64_t layer = 0; layer < c.num_hidden_layers; ++layer) {
    out.push_back({llama_layer_tensor_name(layer, "input_layernorm.weight"), {h}});
    for (size_t p = 0; p < 4; ++p) {  // attention
      out.push_back({llama_layer_tensor_name(layer, projections[p].suffix),
                     {projections[p].d_out, projections[p].d_in}});
    }
    out.push_back({llama_layer_tensor_name(layer, "post_attention_layernorm.weight"), {h}});
    for (size_t p = 4; p < projections.size(); ++p) {  // MLP
      out.push_back({llama_layer_tensor_name(layer, projections[p].suffix),
                     {projections[p].d_out, projections[p].d_in}});
    }
  }
  out.push_back({"model.norm.weight", {h}});
  if (!c.tie_word_embeddings) out.push_back({kLmHead, {c.vocab_size, h}});
  return out;
}

bool is_ignored_llama_buffer(std::string_view name) {
  constexpr std::string_view kInvFreq = "rotary_emb.inv_freq";
  return name.size() >= kInvFreq.size() && name.substr(name.size() - kInvFreq.size()) == kInvFreq;
}

void check_llama_checkpoint(const TensorStore& store, const LlamaConfig& config) {
  const auto layout = llama_tensor_layout(config);
  std::set<std::string> expected;
  size_t missing = 0;
  const ExpectedTensor* first_missing = nullptr;
  for (const ExpectedTensor& t : layout) {
    expected.insert(t.name);
    if (!store.contains(t.name)) {
      ++missing;
      if (first_missing == nullptr) first_missing = &t;
    }
  }
  if (first_missing != nullptr) {
    std::string more =
        missing > 1 ? " (" + std::to_string(missing - 1) + " more tensors missing)" : "";
    throw ModelError(store.dir().string() + ": checkpoint lacks tensor '" + first_missing->name + "' " +
                shape_string(first_missing->shape) + more);
  }
  for (const ExpectedTensor& t : layout) store.check(t.name, t.shape);
  if (config.tie_word_embeddings && store.contains(kLmHead)) {
    expected.insert(kLmHead);
    store.check(kLmHead, {config.vocab_size, config.hidden_size});
  }
  for (const std::string& name : store.names()) {
    if (expected.count(name) == 0 && !is_ignored_llama_buffer(name)) {
      throw ModelError(store.file_of(name).string() + ": unknown tensor '" + name +
                  "' (not part of a Llama model with this config)");
    }
  }
}

}  // namespace model
