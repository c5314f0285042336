#include "model/llama_presets.h"

namespace model {
namespace {

struct Preset {
  const char* name;
  int64_t hidden, intermediate, layers, heads, kv_heads, head_dim;
  double rope_factor;
  bool tied;
};

// From the published config.json files on the Hugging Face hub (model cards of
// meta-llama/Llama-3.2-1B, Llama-3.2-3B and Llama-3.1-8B, config.json as of transformers
// 4.43-4.45): the fields that differ between them. The shared ones are set below.
constexpr Preset kPresets[] = {
    {"llama-3.2-1b", 2048, 8192, 16, 32, 8, 64, 32.0, true},
    {"llama-3.2-3b", 3072, 8192, 28, 24, 8, 128, 32.0, true},
    {"llama-3.1-8b", 4096, 14336, 32, 32, 8, 128, 8.0, false},
};

LlamaConfig make(const Preset& p) {
  LlamaConfig c;
  c.hidden_size = p.hidden;
  c.intermediate_size = p.intermediate;
  c.num_hidden_layers = p.layers;
  c.num_attention_heads = p.heads;
  c.num_key_value_heads = p.kv_heads;
  c.head_dim = p.head_dim;
  c.vocab_size = 128256;
  c.max_position_embeddings = 131072;
  c.rms_norm_eps = 1e-5;
  c.rope_theta = 500000.0;
  c.tie_word_embeddings = p.tied;
  c.torch_dtype = "bfloat16";
  c.rope_scaling = RopeScaling{"llama3", p.rope_factor, 1.0, 4.0, 8192};
  c.bos_token_id = 128000;
  c.eos_token_id = {128001};
  return c;
}

}  // namespace

std::optional<LlamaConfig> llama_preset(std::string_view name) {
  for (const Preset& p : kPresets) {
    if (name == p.name) return make(p);
  }
  return std::nullopt;
}

std::vector<std::string> llama_preset_names() {
  std::vector<std::string> out;
  for (const Preset& p : kPresets) out.emplace_back(p.name);
  return out;
}

}  // namespace model
