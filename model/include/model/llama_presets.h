// The configs of published Llama checkpoints, for random models of the real size
// (`fedctl make-model --preset NAME`).
//
// Every field is the checkpoint's Hugging Face config.json (meta-llama/Llama-3.2-1B,
// meta-llama/Llama-3.2-3B, meta-llama/Llama-3.1-8B): vocab 128256, rope_theta 500000, llama3
// rope scaling, bos 128000 / eos 128001, torch_dtype bfloat16. Llama-3.1-8B's config.json has no
// head_dim; it is hidden_size / num_attention_heads = 128, written out explicitly.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "model/llama_config.h"

namespace model {

// The config of preset `name` ("llama-3.2-1b", "llama-3.2-3b", "llama-3.1-8b"), or nullopt.
std::optional<LlamaConfig> llama_preset(std::string_view name);
// Every preset name, in size order.
std::vector<std::string> llama_preset_names();

}  // namespace model
