// One LoRA training run of a model over a training set: the loop `fedctl train` and the
// participant agent's rounds share (trainer.h does one step; this does the run).
//
//   model::TrainingRunConfig run;
//   run.options = {.lora = lora, .steps = 100, .batch_size = 8};
//   run.initial_adapter = &global;                      // optional: start from this adapter
//   run.dp = model::DpSgdSettings{.sigma = 0.8, .clip = 1, .delta = 1e-5, .sample_rate = 0.04,
//                                 .seed = &secret_seed};
//   run.heldout = &heldout;                             // optional: evaluated after the last step
//   const model::TrainingRunResult r = model::run_training(llama, train, run, &observer);
//   // r.adapter, r.steps (one TrainStepReport each), r.heldout, r.dp->epsilon
//
// DP-SGD (`dp`): every step takes a Poisson sample of the training set with rate q
// (PoissonBatchSampler), clips each example's gradient to C and adds Gaussian noise of std
// sigma * C, divided by the expected batch q * N (DpSgdReducer). The sampling and the noise come
// from two streams of `seed` (privacy::RandomSource: sampling_stream and noise_stream), or from
// the OS CSPRNG without a seed. With delta > 0 an RDP accountant records every step and reports
// the epsilon spent so far at delta.
//
// Evaluation (`heldout`): the held-out loss under the adapter being trained, before the first
// step (evaluate_initial), every eval_every steps (0: never in between) and after the last step.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "model/dataset.h"
#include "model/dp_sgd_reducer.h"
#include "model/evaluation.h"
#include "model/llama_model.h"
#include "model/lora_params.h"
#include "model/trainer.h"
#include "privacy/accountant.h"
#include "privacy/gaussian.h"
#include "privacy/random_source.h"

namespace model {

// DP-SGD of a run (see above).
struct DpSgdSettings {
  double sigma = 0;        // noise multiplier: noise std / clipping norm
  double clip = 0;         // per-example clipping norm C
  double delta = 0;        // delta of the reported epsilon; 0: no accounting
  double sample_rate = 0;  // Poisson sampling rate q of every step, in (0, 1]
  // The streams' seed (null: the OS CSPRNG). Not owned, and not copied: read only while DpSgd
  // is constructed, so that a secret seed stays where its owner wipes it.
  const privacy::Seed* seed = nullptr;
  uint64_t sampling_stream = 0;
  uint64_t noise_stream = 1;
};

// The privacy spent by the steps taken (with DpSgdSettings::delta > 0).
struct DpSgdSpent {
  int64_t steps = 0;
  double epsilon = 0;  // at the settings' delta, after the last step
  double order = 0;    // the RDP order that gave it
};

// DP-SGD attached to a trainer: the Poisson sampler, the noise, the clipping reducer and the
// accountant of the steps taken.
class DpSgd {
 public:
  // Throws model::ModelError for a dataset_size < 1 or a rate outside (0, 1], and what
  // DpSgdReducer refuses (sigma or clip out of range).
  DpSgd(const DpSgdSettings& settings, int64_t dataset_size);
  DpSgd(const DpSgd&) = delete;
  DpSgd& operator=(const DpSgd&) = delete;

  // Draws the trainer's batches from the sampler and reduces its gradients with the reducer.
  void attach(LoraTrainer& trainer);
  // Accounts one step taken (with delta > 0); returns the epsilon spent so far, or NaN.
  double step_taken();

  double expected_batch() const { return reducer_.config().expected_batch; }
  const DpSgdSpent& spent() const { return spent_; }
  const DpSgdReducer& reducer() const { return reducer_; }

 private:
  DpSgdSettings settings_;
  privacy::RandomSource sampling_;
  UrbgRandomBits<privacy::RandomSource> bits_;
  PoissonBatchSampler sampler_;
  privacy::GaussianNoise noise_;
  DpSgdReducer reducer_;
  privacy::RdpAccountant accountant_;
  DpSgdSpent spent_;
};

struct TrainingRunConfig {
  TrainingOptions options;
  const LoraParams* initial_adapter = nullptr;  // null: the trainer's seeded initialisation
  std::optional<DpSgdSettings> dp;
  const TextDataset* heldout = nullptr;  // null: no evaluation
  int64_t eval_batch = 8;
  int64_t eval_every = 0;         // also evaluate every K steps; 0: only at the ends
  bool evaluate_initial = false;  // also evaluate before the first step (reported as step 0)
};

// What a run reports as it goes. Every hook runs on the training thread; an exception from one
// ends the run.
struct TrainingStepProgress {
  const TrainStepReport& report;
  double step_seconds = 0;     // this step's wall time
  int64_t tokens_so_far = 0;   // tokens of every step taken
  double elapsed_seconds = 0;  // since the first step started
  double epsilon = 0;          // DP-SGD's epsilon spent so far; NaN without accounting
};

class TrainingObserver {
 public:
  virtual ~TrainingObserver() = default;
  // After each optimizer step, before its evaluation.
  virtual void on_step(const TrainingStepProgress& /*progress*/) {}
  // After each held-out evaluation; step 0: the one before the first step.
  virtual void on_evaluation(int64_t /*step*/, const EvalResult& /*result*/) {}
  // After step `step` (0: the initial evaluation) and its evaluation, if any.
  virtual void on_step_end(int64_t /*step*/) {}
};

struct TrainingRunResult {
  LoraParams adapter;                         // the trained adapter
  std::vector<TrainStepReport> steps;         // one per optimizer step, in order
  std::optional<EvalResult> initial_heldout;  // with evaluate_initial
  std::optional<EvalResult> heldout;          // after the last step
  double seconds = 0;                         // the steps and their evaluations
  int64_t trainable_parameters = 0;           // the trained numbers (no A when A is frozen)
  std::optional<DpSgdSpent> dp;               // with DP-SGD accounting

  // The mean of the steps' finite losses (an empty Poisson batch reports NaN), or NaN.
  double mean_finite_loss() const;
};

// Trains `options.steps` steps of a LoraTrainer over `train` (holding references to `model`,
// `train` and `config.heldout` for the call). Throws what LoraTrainer, DpSgd, the evaluation and
// the observer throw (model::ModelError for invalid options).
TrainingRunResult run_training(LlamaModel& model, const TextDataset& train,
                               const TrainingRunConfig& config,
                               TrainingObserver* observer = nullptr);

}  // namespace model
