// Held-out evaluation of a Llama model, with or without a LoRA adapter:
//   - language modelling: mean next-token cross-entropy over every predicted token of a
//     dataset, and its perplexity exp(loss);
//   - multiple-choice questions (MedQA style): each option is scored by the log-likelihood of
//     its tokens given the question, per byte, and the question counts as right when the
//     answer's score is the highest.
// Every frozen projection runs through the model's LinearBackend, so an encrypted model is
// evaluated encrypted.
//
//   const model::EvalResult r = model::evaluate_loss(llama, heldout, &lora, /*batch_size=*/8);
//   // r.loss, r.perplexity, r.tokens
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "model/dataset.h"
#include "model/llama_model.h"
#include "model/lora_params.h"
#include "model/tokenizer.h"

namespace model {

struct EvalResult {
  double loss = 0;        // mean next-token cross-entropy over the predicted tokens
  double perplexity = 0;  // exp(loss)
  int64_t tokens = 0;     // predicted tokens: a sequence of n tokens predicts n - 1
  int64_t sequences = 0;  // records (each scored through all of its windows)
};

// Next-token predictions of a batch: the sum over its sequences of (length - 1), at least 0.
int64_t predicted_tokens(const TokenBatch& batch);

// Runs every window of every record of `data` (TextDataset::all_windows: each token after BOS
// predicted once), `batch_size` windows at a time (the last batch may be smaller), and averages the
// cross-entropy over every predicted token (each batch's mean weighted by its predicted tokens,
// summed in double). `lora` may be null. Throws model::ModelError for batch_size < 1, a dataset
// without any predicted token, or what the forward pass refuses.
EvalResult evaluate_loss(LlamaModel& model, const TextDataset& data, const LoraParams* lora,
                         int64_t batch_size);

struct McqResult {
  double accuracy = 0;  // correct / questions
  int64_t questions = 0;
  int64_t correct = 0;
};

// The log-likelihood of each option of `question`: for the context c = [BOS, encode(question)]
// and the continuation o = the tokens of " " + option that follow c in encode(question + " " +
// option) (as lm-evaluation-harness splits them; encode(" " + option) when c is not a prefix),
// the sum over o's tokens of log p(token | everything before it). The options run as one batch.
// A sequence longer than max_position_embeddings loses context tokens from its left. Throws
// model::ModelError for a question without options or an option that does not fit the model.
std::vector<double> option_log_likelihoods(LlamaModel& model, const McqQuestion& question,
                                           const Tokenizer& tokenizer, const LoraParams* lora);

// Accuracy over `questions`: each option's score is its option_log_likelihoods value divided by
// the byte length of " " + option (lm-evaluation-harness's acc_norm: a plain sum would favour
// the shortest option, since every byte costs log-probability), and a question is right when its
// answer has the strictly largest score (a tie counts as wrong). Throws model::ModelError for no
// questions.
McqResult evaluate_mcq(LlamaModel& model, std::span<const McqQuestion> questions,
                       const Tokenizer& tokenizer, const LoraParams* lora);

// The held-out evaluations of one model (`fedctl eval`): the loss of `data` and the accuracy of
// `mcq`, each when given (null: skipped).
struct EvaluationReport {
  std::optional<EvalResult> loss;
  std::optional<McqResult> mcq;
};

// evaluate_loss of `data` (batch_size at a time), then evaluate_mcq of `mcq`, under `lora` (may
// be null). Throws what they throw.
EvaluationReport evaluate_model(LlamaModel& model, const LoraParams* lora, const TextDataset* data,
                                const std::vector<McqQuestion>* mcq, const Tokenizer& tokenizer,
                                int64_t batch_size);

}  // namespace model
