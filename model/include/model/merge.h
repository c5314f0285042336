// Merging a LoRA adapter into its base model: the model a Hugging Face user gets from
// `PeftModel.merge_and_unload()`, written as a plain Llama directory that needs no adapter.
//
//   const model::LlamaWeights base = model::load_llama_weights(model_dir);
//   const model::LoraParams lora = model::read_lora_adapter(adapter_dir, base.config);
//   const model::LlamaWeights merged = model::merge_lora(base, lora);
//   // merged's forward pass equals base's forward pass with `lora`, up to float rounding
//
//   model::merge_lora_directory(model_dir, adapter_dir, out_dir);   // what `fedctl merge` does
//
// Every adapted projection becomes W' = W + (lora_alpha / r) * B * A, the product and the sum
// computed in double and rounded to float once; every other tensor (embeddings, norms, LM head,
// projections the adapter does not target) is copied unchanged, bit for bit.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "model/dtype.h"
#include "model/llama_weights.h"
#include "model/lora_params.h"

namespace model {

// `base` with `adapter` folded into every projection it targets. Throws model::ModelError when
// the adapter does not fit the base (LoraParams::check_fits: layer count, shapes, rank), carries
// no A matrix (the gradients of a frozen-A adapter), or the base was loaded without its decoder
// projections (WeightLoadOptions).
LlamaWeights merge_lora(const LlamaWeights& base, const LoraParams& adapter);

// The files copied unchanged from the model directory into a merged one when present: the
// tokenizer (tokenizer.model, tokenizer.json, tokenizer_config.json, special_tokens_map.json,
// added_tokens.json) and generation_config.json.
const std::vector<std::string>& merge_copied_files();

struct MergeOptions {
  DType dtype = DType::kF32;  // of the written weights: F32 (exact), F16 or BF16 (rounded)
};

struct MergeReport {
  int64_t merged_projections = 0;   // the adapter's (layer, projection) pairs folded in
  std::vector<std::string> copied;  // of merge_copied_files(), those that were present
};

// Reads the Hugging Face Llama directory `model_dir` and the PEFT adapter `adapter_dir`
// (read_lora_adapter) and writes the merged model to `out_dir`: config.json (the model's own,
// every field kept, torch_dtype set to options.dtype), the safetensors checkpoint
// (write_llama_weights: one file, or shards and their index) and the files of
// merge_copied_files() that the model directory holds. `out_dir` appears whole or not at all:
// everything is written into a sibling temporary directory (each file through base::AtomicFile)
// that is renamed into place; on any failure nothing is left behind.
//
// Throws model::ModelError, and writes nothing, when `model_dir` or `adapter_dir` is not a
// directory, `out_dir` exists and is not an empty directory, `out_dir` is the model or the
// adapter directory, the model or adapter files are malformed, the adapter does not fit the
// model (layers, targets, shapes, rank: one line naming the projection), options.dtype is not
// a float type, or a write fails.
MergeReport merge_lora_directory(const std::filesystem::path& model_dir,
                                 const std::filesystem::path& adapter_dir,
                                 const std::filesystem::path& out_dir,
                                 const MergeOptions& options = {});

}  // namespace model
