// Helpers shared by the fedctl commands that train or evaluate (train, eval, forward): flag
// checks against the model, datasets read from JSON lines, and adapters read from PEFT files.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>

#include "model/dataset.h"
#include "model/llama_config.h"
#include "model/lora_params.h"
#include "model/lora_peft.h"
#include "model/peft_adapter.h"
#include "model/tokenizer.h"

namespace fedctl {

// Throws std::invalid_argument unless 2 <= seq_len <= the model's max_position_embeddings.
inline void check_seq_len(int64_t seq_len, const model::LlamaConfig& config) {
  if (seq_len < 2) {
    throw std::invalid_argument("--seq-len must be at least 2 (BOS and EOS), got " +
                                std::to_string(seq_len));
  }
  if (seq_len > config.max_position_embeddings) {
    throw std::invalid_argument("--seq-len " + std::to_string(seq_len) +
                                " exceeds the model's max_position_embeddings " +
                                std::to_string(config.max_position_embeddings));
  }
}

// One example per "text" record of a JSON-lines file, tokenized and cut to seq_len tokens.
// Throws model::Error naming the file for a missing, malformed or empty file.
inline model::TextDataset load_text_dataset(const std::string& path,
                                            const model::Tokenizer& tokenizer, int64_t seq_len) {
  const std::vector<std::string> texts = model::read_jsonl_texts(path);
  return model::TextDataset(texts, tokenizer, seq_len);
}

// The LoRA adapter of a PEFT directory, checked against the model.
inline model::LoraParams load_lora_adapter(const std::string& dir,
                                           const model::LlamaConfig& config) {
  return model::peft_to_lora(model::read_peft_adapter(dir, config), config);
}

}  // namespace fedctl
