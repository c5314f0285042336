// The Hugging Face `config.json` of a Llama model (model_type "llama", LlamaForCausalLM).
//
// Fields and defaults follow transformers' LlamaConfig:
//   hidden_size, intermediate_size, num_hidden_layers, num_attention_heads, vocab_size: required
//   num_key_value_heads      default num_attention_heads (grouped-query attention when fewer)
//   head_dim                 default hidden_size / num_attention_heads
//   rms_norm_eps             default 1e-6
//   rope_theta               default 10000
//   rope_scaling             default none; "linear" and "llama3" are understood
//   tie_word_embeddings      default false (lm_head shares model.embed_tokens)
//   max_position_embeddings  default 2048
//   bos_token_id, eos_token_id  default none (eos may be one id or a list, as instruct models have)
// Features this library does not implement (attention/MLP biases, an activation other than
// SiLU, other rope scaling types) are refused rather than silently ignored.
#pragma once

#include <cstdint>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace model {

inline constexpr char kConfigFile[] = "config.json";

// Largest accepted width (hidden, intermediate, vocab, head dims) and depth; larger values are
// refused as absurd, which also keeps every parameter count far from int64 overflow.
inline constexpr int64_t kMaxLlamaWidth = int64_t{1} << 20;
inline constexpr int64_t kMaxLlamaLayers = int64_t{1} << 12;

struct RopeScaling {
  std::string rope_type;                         // "linear" or "llama3"
  double factor = 1.0;                           // both types
  double low_freq_factor = 1.0;                  // llama3
  double high_freq_factor = 4.0;                 // llama3
  int64_t original_max_position_embeddings = 0;  // llama3
};

struct LlamaConfig {
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;
  int64_t num_hidden_layers = 0;
  int64_t num_attention_heads = 0;
  int64_t num_key_value_heads = 0;
  int64_t head_dim = 0;
  int64_t vocab_size = 0;
  int64_t max_position_embeddings = 2048;
  double rms_norm_eps = 1e-6;
  double rope_theta = 10000.0;
  bool tie_word_embeddings = false;
  std::string torch_dtype;  // "float32", "float16", "bfloat16" or empty
  std::optional<RopeScaling> rope_scaling;
  std::optional<int64_t> bos_token_id;
  std::vector<int64_t> eos_token_id;  // empty: none; one id is written as a number, more as a list

  // Rows of q_proj (heads * head_dim) and of k_proj / v_proj (kv_heads * head_dim).
  int64_t q_dim() const { return num_attention_heads * head_dim; }
  int64_t kv_dim() const { return num_key_value_heads * head_dim; }
  // Query heads that share one key/value head.
  int64_t group_size() const { return num_attention_heads / num_key_value_heads; }
  // Every parameter of the model: embeddings, per-layer norms and projections, the final
  // norm, and lm_head unless tied.
  int64_t parameter_count() const;
};

// Parses a config.json object. `source` names the file in errors. Throws model::ModelError with one
// line for a missing or ill-typed field, a non-positive or absurd size, heads that do not
// divide hidden_size (when head_dim is not given), kv-heads that do not divide heads, a
// model_type other than "llama", architectures without LlamaForCausalLM, or an unsupported
// feature.
LlamaConfig parse_llama_config(const nlohmann::json& json, std::string_view source);

// Reads `dir`/config.json.
LlamaConfig load_llama_config(const std::filesystem::path& dir);

// Checks the invariants parse_llama_config enforces on a config built in code.
void validate_llama_config(const LlamaConfig& config, std::string_view source);

// The Hugging Face config.json object for `config` (model_type, architectures and every field).
nlohmann::json llama_config_to_json(const LlamaConfig& config);

}  // namespace model
