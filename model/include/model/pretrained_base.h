// A pretrained base model made from a recipe: a random Llama (random_model.h) trained on every
// weight (pretrain.h) over the project's general-text corpus (general_corpus.h), byte
// tokenizer. `fedctl pretrain` writes one; fedsim makes one per recipe once and keeps it in a
// cache shared by its runs (a hospital brings its own checkpoint through --model instead).
//
//   model::BaseModelRecipe recipe;                  // fedsim's default shape
//   recipe.config = ...;                            // hidden 64, 2 layers, vocabulary 512
//   const model::BaseModelReport r = model::make_pretrained_base(dir, recipe, observer);
//   // dir/config.json, dir/model.safetensors, dir/pretrain.json (the recipe and the losses)
//
// The same recipe gives the same model on the same machine. The directory appears whole or not
// at all: everything is written into a sibling temporary directory renamed into place.
#pragma once

#include <cstdint>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>

#include "model/llama_config.h"
#include "model/pretrain.h"

namespace model {

struct BaseModelRecipe {
  LlamaConfig config;        // the shape (vocabulary >= 259: the byte tokenizer)
  int64_t documents = 6000;  // general_corpus documents; every 20th is held out
  uint64_t corpus_seed = 1;
  uint64_t init_seed = 1;  // of the random initial weights
  int64_t seq_len = 64;    // tokens per training window
  PretrainOptions train;   // steps, batch, lr, ...; train.seed orders the windows
};

// The recipe as JSON (every field), and a short hex key of it: equal recipes, equal keys.
nlohmann::json recipe_to_json(const BaseModelRecipe& recipe);
std::string recipe_key(const BaseModelRecipe& recipe);

struct BaseModelReport {
  double initial_heldout_loss = 0;  // the random model on the held-out documents
  double heldout_loss = 0;          // the trained model on them
  double final_train_loss = 0;      // mean of the last 10 steps' batch losses
  int64_t windows = 0;
  int64_t tokens = 0;  // over the training windows
  double seconds = 0;
};

// Makes the model in `dir`, which must not exist yet. `observer` sees every step. Throws
// model::ModelError for a bad recipe (validate_llama_config, validate_pretrain_options, a
// vocabulary under the byte tokenizer's 259, documents outside [20, 10^7], seq_len < 2 or
// above max_position_embeddings), an existing `dir`, or an I/O failure (nothing is left).
BaseModelReport make_pretrained_base(const std::filesystem::path& dir,
                                     const BaseModelRecipe& recipe,
                                     const PretrainObserver& observer = {});

}  // namespace model
