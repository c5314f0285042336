// Full-parameter float training of a small Llama on general text: the base model that fedsim's
// federation then adapts with LoRA (a random base model has nothing to adapt: its LM head, at
// the usual 0.02 initialisation, cannot even express a sharp next-token distribution).
//
//   auto weights = std::make_shared<model::LlamaWeights>(model::load_llama_weights(dir));
//   const model::TextDataset windows(model::document_windows(texts, tokenizer, 64));
//   const model::PretrainResult r = model::pretrain_llama(weights, windows, {.steps = 600});
//   model::write_llama_weights(out_dir, *weights);
//
// Every step draws batch_size windows (ShuffledBatches, seeded: training data order, not a
// privacy mechanism), computes the gradient of every weight (LlamaModel::weight_step, float
// products) and takes one AdamW step over all of them, the learning rate warmed up linearly and
// decayed on a cosine (lr_schedule.h). The same weights, windows and options give the same
// model on the same machine (oneDNN's sgemm may pick other kernels on other CPUs).
#pragma once

#include <cstdint>
#include <cstdio>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "model/dataset.h"
#include "model/llama_weights.h"
#include "model/tokenizer.h"

namespace model {

struct PretrainOptions {
  int64_t steps = 600;
  int64_t batch_size = 16;  // windows per step
  double lr = 3e-3;
  int64_t warmup_steps = 30;
  double weight_decay = 0.0;
  uint64_t seed = 0;  // the order of the windows
};

// Throws model::ModelError for steps < 1, batch_size < 1, a non-positive or non-finite lr, a
// negative warmup or weight decay.
void validate_pretrain_options(const PretrainOptions& options);

struct PretrainStepReport {
  int64_t step = 0;  // 1-based
  int64_t steps = 0;
  double loss = 0;  // of the step's batch, before its update
  double lr = 0;
  int64_t tokens = 0;  // of the step's batch
};
using PretrainObserver = std::function<void(const PretrainStepReport&)>;

// An observer that prints "pretraining: step k/n, loss L, N tok/s, ETA Ts" to `out` at the first
// and last step and at every tenth of the steps, prefixed by `prefix`.
PretrainObserver pretrain_progress_printer(std::FILE* out, std::string prefix);

struct PretrainResult {
  std::vector<double> losses;  // one per step
};

// Trains every tensor of `weights` in place (see above). The batch size is capped at the number
// of windows. Throws model::ModelError for bad options, weights without their projections or
// embeddings loaded, or windows that do not fit the model.
PretrainResult pretrain_llama(const std::shared_ptr<LlamaWeights>& weights,
                              const TextDataset& windows, const PretrainOptions& options,
                              const PretrainObserver& observer = {});

// Every document as [BOS, encode(text), EOS] cut into consecutive windows of at most seq_len
// tokens (a last window of one token is dropped), so that no token of the corpus is left out and
// every document's start is seen as it begins. Throws model::ModelError for seq_len < 2 or when
// no window results.
std::vector<std::vector<int32_t>> document_windows(std::span<const std::string> texts,
                                                   const Tokenizer& tokenizer, int64_t seq_len);

}  // namespace model
