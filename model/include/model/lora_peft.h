// Conversion between the trainer's LoRA parameters (lora_params.h) and PEFT adapter files
// (peft_adapter.h).
//
// Both store A as rank x d_in and B as d_out x rank, row-major, so the numbers move unchanged,
// bit for bit, in both directions; r is the rank, lora_alpha the alpha, and target_modules the
// targets' module names ("q_proj", "v_proj", ...) in the order of the LoraConfig.
//
//   model::write_peft_adapter(out_dir, model::lora_to_peft(lora, llama.config(), model_dir));
//   const model::PeftAdapter peft = model::read_peft_adapter(out_dir, llama.config());
//   const model::LoraParams lora = model::peft_to_lora(peft, llama.config());
//   model::Matrix logits = llama.forward(batch, nullptr, &lora);
#pragma once

#include <string>

#include "model/llama_config.h"
#include "model/lora_params.h"
#include "model/peft_adapter.h"

namespace model {

// The adapter `params` as PEFT stores it. Throws model::ModelError when `params` does not fit
// `model` or carries no A (the gradients of a frozen-A adapter are not an adapter).
PeftAdapter lora_to_peft(const LoraParams& params, const LlamaConfig& model,
                         const std::string& base_model_name_or_path = "");

// The parameters of a PEFT adapter over `model`. A file does not say whether A was trained, so
// the result's config has freeze_a = false. Throws model::ModelError (check_peft_adapter) when the
// adapter is malformed or does not fit `model`.
LoraParams peft_to_lora(const PeftAdapter& adapter, const LlamaConfig& model);

// The LoRA adapter of a PEFT directory (read_peft_adapter), checked against `model`. Throws
// model::ModelError as read_peft_adapter and peft_to_lora do.
LoraParams read_lora_adapter(const std::string& dir, const LlamaConfig& model);

// Writes `params` to `dir` in PEFT layout (write_peft_adapter of lora_to_peft).
void write_lora_adapter(const std::string& dir, const LoraParams& params, const LlamaConfig& model,
                        const std::string& base_model_name_or_path = "");

}  // namespace model
