// LoRA fine-tuning of a frozen Llama model (docs/design.md §4): batches drawn from a training
// set, forward pass, next-token cross-entropy and the exact backward pass through the model's
// LinearBackend (float, int8 or encrypted), gradient accumulation, and AdamW with decoupled
// weight decay on the LoRA parameters under a learning-rate schedule with warmup.
//
//   model::LlamaModel llama(weights, model::make_linear_backend(kind, weights));
//   model::LoraTrainer trainer(llama, train_set, {.steps = 200, .seed = 1});
//   while (trainer.steps_taken() < 200) {
//     const model::TrainStepReport r = trainer.step();  // r.loss, r.lr, r.tokens
//   }
//   const model::EvalResult held_out = trainer.evaluate(heldout_set, /*batch_size=*/8);
//   model::write_peft_adapter(dir, model::lora_to_peft(trainer.adapter(), llama.config()));
//
// Randomness. One seed drives everything random in training, through three independent streams
// derived from it: the LoRA initialisation (init_lora_params), the batch order
// (ShuffledBatches) and the window each step takes of a record longer than seq_len tokens. Both are
// std::mt19937_64 (training order, not secrets) and never touch the randomness of an encrypted
// backend (its key and encryption noise), whose products equal the int8 backend's bit for bit: with
// the same seed the two backends train bit-identical adapters.
//
// Batches. Each optimizer step takes the next *effective batch* of batch_size * grad_accum
// distinct examples of a seeded ShuffledBatches, and splits it in order into grad_accum
// micro-batches of batch_size examples, which run forward and backward one after the other (only
// one micro-batch's activations are alive at a time). The step's loss is the mean next-token
// cross-entropy over every predicted token of the effective batch, and the gradient is exactly
// that loss's gradient: each micro-batch's gradient (of its own mean) weighted by its share of
// the predicted tokens. grad_accum = K with batch_size = B therefore takes the same steps as
// K = 1 with batch_size = K * B, up to float rounding.
//
// DP-SGD hook. A GradientReducer (set_gradient_reducer) receives every micro-batch's
// per-example gradients before anything sums them, and makes the gradient the optimizer
// applies: clipping each example and adding noise plug in there. Without one, the trainer
// uses the batch gradient directly (no per-example gradients are formed).
//
// Poisson batches. A BatchSampler (set_batch_sampler) replaces the fixed-size shuffled batches:
// each step then takes whatever examples the sampler returns (DP-SGD's PoissonBatchSampler: each
// example independently with probability q, so the count varies and may be zero), split in
// order into ceil(count / batch_size) micro-batches of at most batch_size examples (grad_accum
// is then unused). A step whose batch predicts no token still runs the reducer, so DP-SGD
// applies its noise-only update, as the privacy analysis of Poisson sampling assumes.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "model/adamw.h"
#include "model/dataset.h"
#include "model/evaluation.h"
#include "model/llama_model.h"
#include "model/lora_config.h"
#include "model/lora_params.h"
#include "model/lr_schedule.h"

namespace model {

struct TrainingOptions {
  LoraConfig lora;     // rank, alpha, targets, freeze_a (FFA-LoRA)
  AdamWOptions adamw;  // adamw.lr is the schedule's base learning rate
  LrScheduleKind schedule = LrScheduleKind::kConstant;
  int64_t warmup_steps = 0;
  int64_t steps = 100;     // optimizer steps of the run: the schedule's total
  int64_t batch_size = 8;  // examples per micro-batch
  int64_t grad_accum = 1;  // micro-batches per optimizer step
  uint64_t seed = 0;
};

// Throws model::ModelError with one line for an invalid LoRA config or AdamW options, steps < 1,
// batch_size < 1, grad_accum < 1, a negative warmup, or an effective batch
// (batch_size * grad_accum) larger than `dataset_size`.
void validate_training_options(const TrainingOptions& options, int64_t dataset_size);

// Turns the per-example gradients of a step into the gradient the optimizer applies.
class GradientReducer {
 public:
  virtual ~GradientReducer() = default;

  // Called once per micro-batch. per_example[s] is sequence s's share of the micro-batch
  // gradient: the gradient of (the sum of its token losses) / (the micro-batch's predicted
  // tokens), see lora_gradients.h; predicted[s] is its number of predicted tokens. Adds the
  // micro-batch's contribution into `sum`, which is zero at the start of each step and shaped
  // like the trained parameters (no A matrices when A is frozen).
  virtual void add(std::span<const LoraParams> per_example, std::span<const int64_t> predicted,
                   LoraParams& sum) = 0;

  // Called once per step after the last micro-batch: makes `sum` the gradient to apply.
  // `examples` and `predicted` count the whole effective batch.
  virtual void finish(LoraParams& sum, int64_t examples, int64_t predicted) = 0;
};

// The reducer that reproduces the trainer's own gradient from per-example gradients: each
// share is rescaled to its sequence's summed token loss, summed, and divided by the effective
// batch's predicted tokens. The reference for reducers that clip and add noise.
class MeanGradientReducer : public GradientReducer {
 public:
  void add(std::span<const LoraParams> per_example, std::span<const int64_t> predicted,
           LoraParams& sum) override;
  void finish(LoraParams& sum, int64_t examples, int64_t predicted) override;
};

// Chooses the examples of each optimizer step in place of the trainer's shuffled batches.
class BatchSampler {
 public:
  virtual ~BatchSampler() = default;
  // The indices (into the training set) of the next step's examples: any number, possibly none.
  virtual std::vector<int64_t> next() = 0;
};

// DP-SGD's Poisson sampling (poisson_sample in dataset.h): every step includes each of the
// `size` examples independently with probability q, using `bits` (a CSPRNG for DP, e.g.
// UrbgRandomBits over privacy::RandomSource). Holds a reference: `bits` must outlive it.
class PoissonBatchSampler : public BatchSampler {
 public:
  // Throws model::ModelError for size < 1 or q outside (0, 1].
  PoissonBatchSampler(int64_t size, double q, RandomBits& bits);
  std::vector<int64_t> next() override;

 private:
  int64_t size_;
  double q_;
  RandomBits& bits_;
};

// What one optimizer step did.
struct TrainStepReport {
  int64_t step = 0;              // 1-based number of the step just taken
  double loss = 0;               // train loss of the effective batch, before the update
                                 // (NaN when it predicts no token: an empty Poisson batch)
  double lr = 0;                 // learning rate the optimizer applied
  int64_t examples = 0;          // sequences in the effective batch
  int64_t tokens = 0;            // tokens run through the model
  int64_t predicted_tokens = 0;  // tokens the loss averages over
};

class LoraTrainer {
 public:
  // Initialises the adapter (PEFT init from the seed's LoRA stream) and the batch order. Holds
  // references: `model` and `train` must outlive the trainer. Throws model::ModelError for options
  // validate_training_options refuses.
  LoraTrainer(LlamaModel& model, const TextDataset& train, const TrainingOptions& options);

  // One optimizer step: grad_accum micro-batches forward and backward, then AdamW at the
  // schedule's learning rate for this step. Throws model::ModelError when an effective batch has no
  // token to predict or the backend refuses a product.
  TrainStepReport step();

  // Mean next-token cross-entropy of `data` under the current adapter (evaluate_loss).
  EvalResult evaluate(const TextDataset& data, int64_t batch_size);

  int64_t steps_taken() const { return steps_taken_; }
  const TrainingOptions& options() const { return options_; }
  // The adapter being trained, and the gradient applied by the last step (empty before one).
  const LoraParams& adapter() const { return lora_; }
  const LoraParams& last_gradient() const { return gradient_; }
  const AdamW& optimizer() const { return optimizer_; }
  const LrSchedule& schedule() const { return schedule_; }

  // Routes every micro-batch's per-example gradients through `reducer` (see GradientReducer);
  // null restores the plain batch gradient. Not owned: it must outlive its use.
  void set_gradient_reducer(GradientReducer* reducer) { reducer_ = reducer; }
  // Draws every later step's examples from `sampler` (see "Poisson batches" above); null
  // restores the shuffled batches. Not owned: it must outlive its use.
  void set_batch_sampler(BatchSampler* sampler) { sampler_ = sampler; }
  // Replaces the adapter being trained, e.g. with a federation's global adapter at the start of
  // a round (the optimizer state and step count are kept: call it before the first step).
  // Throws model::ModelError unless `adapter` has this trainer's targets, rank and shapes.
  void set_adapter(const LoraParams& adapter);

 private:
  LlamaModel& model_;
  const TextDataset& train_;
  TrainingOptions options_;
  LoraParams lora_;
  LoraParams gradient_;
  AdamW optimizer_;
  LrSchedule schedule_;
  ShuffledBatches batches_;
  GradientReducer* reducer_ = nullptr;
  BatchSampler* sampler_ = nullptr;
  int64_t steps_taken_ = 0;
};

// The seeds of the training RNG's streams: the LoRA initialisation and the batch order.
uint64_t lora_init_seed(uint64_t seed);
uint64_t batch_order_seed(uint64_t seed);
// The window draw of step `step` (0-based): which window of each sampled record the step trains
// on (TextDataset::batch(indices, draw)), from a third stream of the seed.
uint64_t window_draw(uint64_t seed, int64_t step);

}  // namespace model
