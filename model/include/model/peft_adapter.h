// LoRA adapters as files in the layout of Hugging Face PEFT, so that
// `PeftModel.from_pretrained(base, dir)` loads what we train and we load what PEFT trains.
//
//   dir/adapter_config.json        {"peft_type": "LORA", "task_type": "CAUSAL_LM", "r": 8,
//                                   "lora_alpha": 16, "target_modules": ["q_proj", "v_proj"],
//                                   "lora_dropout": 0.0, "bias": "none",
//                                   "fan_in_fan_out": false, "inference_mode": true,
//                                   "base_model_name_or_path": "..."}
//   dir/adapter_model.safetensors  per layer i and target projection P (group G = self_attn for
//                                  q/k/v/o_proj, mlp for gate/up/down_proj):
//       base_model.model.model.layers.{i}.{G}.{P}.lora_A.weight   [r, d_in]
//       base_model.model.model.layers.{i}.{G}.{P}.lora_B.weight   [d_out, r]
//
// The adapted projection computes W x + (lora_alpha / r) * B A x. This header only moves the
// numbers in and out of files; the LoRA math lives with the layers.
//
// An adapter always covers every target projection of layers 0 .. L-1 (PEFT's default without
// `layers_to_transform`). PEFT options we do not implement (DoRA, rsLoRA, rank or alpha
// patterns, layers_to_transform, bias other than "none", fan_in_fan_out, regex target_modules)
// are refused on read rather than silently ignored.
#pragma once

#include <compare>
#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "model/llama_config.h"

namespace model {

inline constexpr char kPeftConfigFile[] = "adapter_config.json";
inline constexpr char kPeftWeightsFile[] = "adapter_model.safetensors";

// One adapted projection: layer index and projection name ("q_proj", ..., "down_proj").
struct LoraSite {
  int64_t layer = 0;
  std::string projection;

  auto operator<=>(const LoraSite&) const = default;
};

// The two factors of one adapted projection, row-major float32.
struct LoraFactors {
  int64_t d_in = 0;
  int64_t d_out = 0;
  std::vector<float> a;  // [r, d_in]
  std::vector<float> b;  // [d_out, r]

  bool operator==(const LoraFactors&) const = default;
};

struct PeftAdapter {
  int64_t r = 8;
  double lora_alpha = 16;
  std::vector<std::string> target_modules;  // e.g. {"q_proj", "v_proj"}
  std::string base_model_name_or_path;      // informative; may be empty
  std::map<LoraSite, LoraFactors> weights;

  double scaling() const { return lora_alpha / static_cast<double>(r); }
  // Layers covered: 1 + the largest layer index in `weights` (0 when empty).
  int64_t layer_count() const;

  bool operator==(const PeftAdapter&) const = default;
};

// True for the seven Llama projection names.
bool is_lora_projection(std::string_view projection);

// "base_model.model.model.layers.3.self_attn.q_proj.lora_A.weight" for (3, "q_proj", 'A').
// Throws model::ModelError for an unknown projection or a matrix other than 'A' or 'B'.
std::string peft_lora_tensor_name(int64_t layer, std::string_view projection, char matrix);

// A zero-filled adapter with the right shapes for every target of every layer of `config`
// (callers then initialise A, e.g. randomly, and leave B zero as LoRA does). Throws
// model::ModelError for r < 1, an unknown or repeated target, or no targets.
PeftAdapter make_peft_adapter(const LlamaConfig& config, int64_t r, double lora_alpha,
                              const std::vector<std::string>& target_modules);

// Throws model::ModelError with one line starting with `source` unless the adapter is well formed:
// r >= 1, finite lora_alpha, known and distinct targets, every target of every layer
// 0 .. layer_count()-1 present and no other projection, factor sizes r * d_in and d_out * r,
// and each projection with the same d_in and d_out in every layer.
void validate_peft_adapter(const PeftAdapter& adapter, std::string_view source = "adapter");

// validate_peft_adapter, then the adapter fits `config`: exactly num_hidden_layers layers and
// each projection's d_in and d_out equal to the model's.
void check_peft_adapter(const PeftAdapter& adapter, const LlamaConfig& config,
                        std::string_view source = "adapter");

// Writes dir/adapter_config.json and dir/adapter_model.safetensors (F32, metadata
// {"format": "pt"} as PEFT writes it), creating `dir` if needed, each through a temporary file
// renamed into place. Throws model::ModelError for an adapter validate_peft_adapter refuses or an
// I/O failure.
void write_peft_adapter(const std::filesystem::path& dir, const PeftAdapter& adapter);

// Reads a PEFT LoRA adapter directory. F16 and BF16 tensors are converted to float32. Throws
// model::ModelError with one line naming the file and, where there is one, the tensor: a missing
// file, malformed JSON, peft_type other than "LORA", a missing or bad r / lora_alpha /
// target_modules, an unsupported option, a tensor that is not a float, an unknown tensor name,
// a projection outside target_modules, a factor of the wrong shape or rank (r mismatch), a
// missing factor, or an incomplete set of layers.
PeftAdapter read_peft_adapter(const std::filesystem::path& dir);
// read_peft_adapter, then check_peft_adapter against `config`.
PeftAdapter read_peft_adapter(const std::filesystem::path& dir, const LlamaConfig& config);

}  // namespace model
