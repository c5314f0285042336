#include "model/trainer.h"

#include <algorithm>
#include <limits>
#include <random>
#include <string>
#include <utility>

#include "model/error.h"
#include "seeded_random.h"

namespace model {
namespace {

// Streams of the training RNG (seeded_random.h's mix_seed).
constexpr uint64_t kLoraInitStream = 0;
constexpr uint64_t kBatchOrderStream = 1;
constexpr uint64_t kWindowStream = 2;

const TrainingOptions& checked(const TrainingOptions& options, int64_t dataset_size) {
  validate_training_options(options, dataset_size);
  return options;
}

// AdamW's view of the trained matrices: "layers.{i}.{P}.lora_A" / "...lora_B" per pair, A
// omitted when it is frozen (then it is neither updated nor decayed).
std::vector<ParameterGradient> parameter_list(LoraParams& params, const LoraParams& gradient) {
  std::vector<ParameterGradient> list;
  for (const ProjectionId id : params.ids()) {
    LoraPair& p = params.at(id);
    const LoraPair& g = gradient.at(id);
    const std::string name = projection_name(id);
    if (g.a.size() != 0) {
      list.push_back({name + ".lora_A",
                      {p.a.data(), static_cast<size_t>(p.a.size())},
                      {g.a.data(), static_cast<size_t>(g.a.size())}});
    }
    list.push_back({name + ".lora_B",
                    {p.b.data(), static_cast<size_t>(p.b.size())},
                    {g.b.data(), static_cast<size_t>(g.b.size())}});
  }
  return list;
}

}  // namespace

uint64_t lora_init_seed(uint64_t seed) {
  return detail::mix_seed(seed, kLoraInitStream);
}
uint64_t batch_order_seed(uint64_t seed) {
  return detail::mix_seed(seed, kBatchOrderStream);
}
uint64_t window_draw(uint64_t seed, int64_t step) {
  return detail::mix_seed(detail::mix_seed(seed, kWindowStream), static_cast<uint64_t>(step));
}

void validate_training_options(const TrainingOptions& o, int64_t dataset_size) {
  validate_lora_config(o.lora);
  validate_adamw_options(o.adamw);
  if (o.steps < 1)
    throw ModelError("training: steps must be at least 1, got " + std::to_string(o.steps));
  if (o.batch_size < 1) {
    throw ModelError("training: batch size must be at least 1, got " +
                     std::to_string(o.batch_size));
  }
  if (o.grad_accum < 1) {
    throw ModelError("training: gradient accumulation must be at least 1, got " +
                     std::to_string(o.grad_accum));
  }
  if (o.warmup_steps < 0) {
    throw ModelError("training: warmup steps must not be negative, got " +
                     std::to_string(o.warmup_steps));
  }
  if (o.batch_size > dataset_size / o.grad_accum) {
    throw ModelError("training: a step takes batch " + std::to_string(o.batch_size) + " x " +
                     std::to_string(o.grad_accum) + " accumulated examples, the training set has " +
                     std::to_string(dataset_size));
  }
}

void MeanGradientReducer::add(std::span<const LoraParams> per_example,
                              std::span<const int64_t> predicted, LoraParams& sum) {
  if (per_example.size() != predicted.size()) {
    throw ModelError("gradient reducer: " + std::to_string(per_example.size()) +
                     " per-example gradients for " + std::to_string(predicted.size()) +
                     " sequences");
  }
  int64_t batch_predicted = 0;
  for (const int64_t p : predicted) batch_predicted += p;
  for (const LoraParams& share : per_example) {
    LoraParams scaled = share;
    scaled *= static_cast<float>(batch_predicted);  // the gradient of the summed token losses
    sum += scaled;
  }
}

void MeanGradientReducer::finish(LoraParams& sum, int64_t examples, int64_t predicted) {
  (void)examples;
  if (predicted < 1) throw ModelError("gradient reducer: no predicted token");
  sum *= static_cast<float>(1.0 / static_cast<double>(predicted));
}

PoissonBatchSampler::PoissonBatchSampler(int64_t size, double q, RandomBits& bits)
    : size_(size), q_(q), bits_(bits) {
  if (size < 1) throw ModelError("Poisson sampling: the training set is empty");
  if (!(q > 0 && q <= 1)) {
    throw ModelError("Poisson sampling: the rate must be in (0, 1], got " + std::to_string(q));
  }
}

std::vector<int64_t> PoissonBatchSampler::next() {
  return poisson_sample(size_, q_, bits_);
}

LoraTrainer::LoraTrainer(LlamaModel& model, const TextDataset& train,
                         const TrainingOptions& options)
    : model_(model),
      train_(train),
      options_(checked(options, train.size())),
      optimizer_(options.adamw),
      schedule_{options.schedule, options.warmup_steps, options.steps},
      batches_(train.size(), options.batch_size * options.grad_accum,
               batch_order_seed(options.seed)) {
  std::mt19937_64 rng(lora_init_seed(options.seed));
  lora_ = init_lora_params(model_.config(), options_.lora, rng);
}

void LoraTrainer::set_adapter(const LoraParams& adapter) {
  adapter.check_fits(model_.config());
  if (adapter.ids() != lora_.ids() || adapter.config().rank != lora_.config().rank ||
      adapter.parameter_count() != lora_.parameter_count()) {
    throw ModelError("set_adapter: the adapter's targets or rank differ from the trainer's");
  }
  lora_ = adapter;
}

TrainStepReport LoraTrainer::step() {
  const LlamaConfig& config = model_.config();
  const std::vector<int64_t> indices = sampler_ ? sampler_->next() : batches_.next();
  const auto b = static_cast<size_t>(options_.batch_size);
  std::vector<TokenBatch> micro;
  std::vector<int64_t> micro_predicted;
  TrainStepReport report;
  for (size_t begin = 0; begin < indices.size(); begin += b) {
    micro.push_back(train_.batch(
        std::span<const int64_t>(indices).subspan(begin, std::min(b, indices.size() - begin)),
        window_draw(options_.seed, steps_taken_)));
    micro_predicted.push_back(predicted_tokens(micro.back()));
    report.predicted_tokens += micro_predicted.back();
    report.tokens += micro.back().total_tokens();
    report.examples += micro.back().sequence_count();
  }
  if (report.predicted_tokens == 0 && !reducer_) {
    throw ModelError("training step " + std::to_string(steps_taken_ + 1) +
                     ": no example of the batch has two tokens");
  }

  const auto total = static_cast<double>(report.predicted_tokens);  // 0 only with a reducer
  LoraParams sum(config, options_.lora, /*with_a=*/!options_.lora.freeze_a);
  double loss = 0;
  for (size_t k = 0; k < micro.size(); ++k) {
    if (micro_predicted[k] == 0) continue;  // nothing to predict: no loss, no gradient
    LoraStep s = model_.lora_step(micro[k], lora_, /*per_example=*/reducer_ != nullptr);
    const double share = static_cast<double>(micro_predicted[k]) / total;
    loss += s.loss * share;
    if (reducer_) {
      std::vector<int64_t> predicted;
      for (const SequenceSpan& span : micro[k].spans()) {
        predicted.push_back(std::max<int64_t>(0, span.length - 1));
      }
      reducer_->add(s.gradients.per_example, predicted, sum);
    } else if (micro.size() == 1) {
      sum = std::move(s.gradients.batch);
    } else {
      s.gradients.batch *= static_cast<float>(share);
      sum += s.gradients.batch;
    }
  }
  if (reducer_) reducer_->finish(sum, report.examples, report.predicted_tokens);
  gradient_ = std::move(sum);

  report.lr = schedule_.lr(options_.adamw.lr, steps_taken_);
  optimizer_.set_lr(report.lr);
  optimizer_.step(parameter_list(lora_, gradient_));
  report.loss = report.predicted_tokens > 0 ? loss : std::numeric_limits<double>::quiet_NaN();
  report.step = ++steps_taken_;
  return report;
}

EvalResult LoraTrainer::evaluate(const TextDataset& data, int64_t batch_size) {
  return evaluate_loss(model_, data, &lora_, batch_size);
}

}  // namespace model
