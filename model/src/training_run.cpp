#include "model/training_run.h"

#include <chrono>
#include <cmath>
#include <memory>

namespace model {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

privacy::RandomSource stream_of(const DpSgdSettings& s, uint64_t stream) {
  return s.seed ? privacy::RandomSource(*s.seed, stream) : privacy::RandomSource();
}

// The held-out evaluations of a run and their hooks.
struct RunEvaluator {
  const TrainingRunConfig& config;
  LoraTrainer& trainer;
  TrainingObserver* observer;

  bool due(int64_t step) const {
    if (config.heldout == nullptr) return false;
    if (step == 0) return config.evaluate_initial;
    return (config.eval_every > 0 && step % config.eval_every == 0) || step == config.options.steps;
  }

  EvalResult evaluate(int64_t step) {
    const EvalResult e = trainer.evaluate(*config.heldout, config.eval_batch);
    if (observer) observer->on_evaluation(step, e);
    return e;
  }
};

}  // namespace

DpSgd::DpSgd(const DpSgdSettings& settings, int64_t dataset_size)
    : settings_(settings),
      sampling_(stream_of(settings, settings.sampling_stream)),
      bits_(sampling_),
      sampler_(dataset_size, settings.sample_rate, bits_),
      noise_(stream_of(settings, settings.noise_stream)),
      reducer_({.clip = settings.clip,
                .sigma = settings.sigma,
                .expected_batch = settings.sample_rate * static_cast<double>(dataset_size)},
               noise_) {
  settings_.seed = nullptr;  // used up: the streams are keyed
}

void DpSgd::attach(LoraTrainer& trainer) {
  trainer.set_batch_sampler(&sampler_);
  trainer.set_gradient_reducer(&reducer_);
}

double DpSgd::step_taken() {
  if (!(settings_.delta > 0)) return std::nan("");
  accountant_.add({.q = settings_.sample_rate, .sigma = settings_.sigma, .steps = 1});
  const privacy::PrivacySpent s = accountant_.spent(settings_.delta);
  spent_ = {.steps = accountant_.total_steps(), .epsilon = s.epsilon, .order = s.order};
  return s.epsilon;
}

double TrainingRunResult::mean_finite_loss() const {
  double sum = 0;
  int n = 0;
  for (const TrainStepReport& r : steps) {
    if (std::isfinite(r.loss)) {
      sum += r.loss;
      ++n;
    }
  }
  return n ? sum / n : std::nan("");
}

TrainingRunResult run_training(LlamaModel& model, const TextDataset& train,
                               const TrainingRunConfig& config, TrainingObserver* observer) {
  LoraTrainer trainer(model, train, config.options);
  if (config.initial_adapter) trainer.set_adapter(*config.initial_adapter);
  std::unique_ptr<DpSgd> dp;
  if (config.dp) {
    dp = std::make_unique<DpSgd>(*config.dp, train.size());
    dp->attach(trainer);
  }
  RunEvaluator evaluator{config, trainer, observer};
  TrainingRunResult result;
  if (evaluator.due(0)) {
    result.initial_heldout = evaluator.evaluate(0);
    if (observer) observer->on_step_end(0);
  }
  const Clock::time_point start = Clock::now();
  int64_t tokens = 0;
  for (int64_t s = 1; s <= config.options.steps; ++s) {
    const Clock::time_point step_start = Clock::now();
    const TrainStepReport r = trainer.step();
    const double step_seconds = seconds_since(step_start);
    const double epsilon = dp ? dp->step_taken() : std::nan("");
    tokens += r.tokens;
    result.steps.push_back(r);
    if (observer) {
      observer->on_step({.report = r,
                         .step_seconds = step_seconds,
                         .tokens_so_far = tokens,
                         .elapsed_seconds = seconds_since(start),
                         .epsilon = epsilon});
    }
    if (evaluator.due(s)) result.heldout = evaluator.evaluate(s);
    if (observer) observer->on_step_end(s);
  }
  result.seconds = seconds_since(start);
  result.adapter = trainer.adapter();
  result.trainable_parameters = config.options.lora.freeze_a
                                    ? trainer.last_gradient().parameter_count()
                                    : trainer.adapter().parameter_count();
  if (dp && config.dp->delta > 0) result.dp = dp->spent();
  return result;
}

}  // namespace model
