// The simulation's evaluation of the global model, round by round: the held-out loss,
// perplexity and MCQ accuracy (log-likelihood scoring, model/evaluation.h) of every site and
// pooled over the sites, for the base model before any round (round 0: the initial adapter, whose
// B = 0 leaves the base model unchanged) and for the global adapter after every round.
//
// fedsim runs every party, so it can hold every site's held-out notes; a real deployment
// evaluates at each site. The evaluation runs in float in this process (the quantity measured is
// the model, not the encrypted path that trained it) and is appended to RUN/evaluation.jsonl, one
// object a site and round plus one "pooled" object a round:
//   {"round": 3, "site": "site-0", "heldout_loss": 2.91, "perplexity": 18.4,
//    "mcq_accuracy": 0.5, "questions": 10, "tokens": 5480}
// The pooled loss weights each site by its predicted tokens; the pooled accuracy counts every
// question once per site that asks it.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <utility>
#include <vector>

#include "model/llama_model.h"
#include "model/lora_config.h"
#include "model/lora_params.h"
#include "model/tokenizer.h"
#include "sim_config.h"
#include "sim_setup.h"

namespace fedsim {

class GlobalEvaluator {
 public:
  // Loads the model (float) and every site's held-out notes and questions (generated sites share
  // RUN/data/mcq.jsonl). Throws with one line when they cannot be read.
  GlobalEvaluator(const SimConfig& config, const SimLayout& layout);
  ~GlobalEvaluator();

  // The rounds RUN/evaluation.jsonl already holds (a resumed run does not repeat them).
  bool has_round(uint32_t round) const;

  // One adapter evaluated over every site's held-out notes and questions: a record a site and
  // the pooled one (as in RUN/evaluation.jsonl, without "round").
  struct Evaluation {
    std::vector<nlohmann::json> sites;
    nlohmann::json pooled;
  };
  // Evaluates any adapter of the model (e.g. a baseline's) without writing anything.
  Evaluation evaluate_adapter(const model::LoraParams& lora);

  // Evaluates `lora` as the global model after `round` (0: before any), appends the records and
  // returns the pooled one.
  nlohmann::json evaluate(uint32_t round, const model::LoraParams& lora);
  // Round 0: RUN/initial_adapter.
  nlohmann::json evaluate_initial();
  // The global adapter of RUN/checkpoints/latest.ckpt when it is the one after `round`;
  // nullopt when the checkpoint holds another round (already replaced) or cannot be read.
  std::optional<nlohmann::json> evaluate_checkpoint(uint32_t round);

  // RUN/initial_adapter, and the round and global adapter of RUN/checkpoints/latest.ckpt
  // (nullopt when it cannot be read).
  model::LoraParams initial_adapter() const;
  std::optional<std::pair<uint32_t, model::LoraParams>> latest_checkpoint() const;

  // What the evaluation runs on (float), for code that trains an adapter of the same model.
  const std::shared_ptr<const model::LlamaWeights>& weights() const;
  const model::Tokenizer& tokenizer() const;
  const model::LoraConfig& lora_config() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// The pooled records of RUN/evaluation.jsonl by round (the last one of each round).
std::vector<nlohmann::json> pooled_evaluations(const std::filesystem::path& run_dir);

}  // namespace fedsim
