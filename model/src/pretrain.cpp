#include "model/pretrain.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <memory>
#include <string>

#include "model/adamw.h"
#include "model/error.h"
#include "model/float_backend.h"
#include "model/llama_model.h"
#include "model/lr_schedule.h"
#include "model/weight_gradients.h"

namespace model {

void validate_pretrain_options(const PretrainOptions& o) {
  if (o.steps < 1) throw ModelError("pretraining: steps must be at least 1");
  if (o.batch_size < 1) throw ModelError("pretraining: the batch size must be at least 1");
  if (!(o.lr > 0) || !std::isfinite(o.lr)) {
    throw ModelError("pretraining: the learning rate must be a positive number");
  }
  if (o.warmup_steps < 0) throw ModelError("pretraining: warmup steps must not be negative");
  if (!(o.weight_decay >= 0) || !std::isfinite(o.weight_decay)) {
    throw ModelError("pretraining: weight decay must not be negative");
  }
}

PretrainResult pretrain_llama(const std::shared_ptr<LlamaWeights>& weights,
                              const TextDataset& windows, const PretrainOptions& options,
                              const PretrainObserver& observer) {
  validate_pretrain_options(options);
  if (!weights) throw ModelError("pretraining: no weights");
  // The backend reads the same object the optimizer updates: every step sees the new weights.
  LlamaModel llama(weights, std::make_unique<FloatBackend>(weights));
  AdamW optimizer({.lr = options.lr, .weight_decay = options.weight_decay});
  const LrSchedule schedule{.kind = LrScheduleKind::kCosine,
                            .warmup_steps = std::min(options.warmup_steps, options.steps),
                            .total_steps = options.steps};
  ShuffledBatches batches(windows.size(), std::min(options.batch_size, windows.size()),
                          options.seed);
  PretrainResult result;
  result.losses.reserve(static_cast<size_t>(options.steps));
  for (int64_t step = 0; step < options.steps; ++step) {
    const TokenBatch batch = windows.batch(batches.next());
    WeightStep s = llama.weight_step(batch);
    const double lr = schedule.lr(options.lr, step);
    optimizer.set_lr(lr);
    std::vector<NamedTensor> values = named_tensors(*weights);
    std::vector<NamedTensor> grads = named_tensors(s.gradients);
    std::vector<ParameterGradient> params;
    params.reserve(values.size());
    for (size_t i = 0; i < values.size(); ++i) {
      params.push_back(
          {values[i].name, {values[i].data, values[i].size}, {grads[i].data, grads[i].size}});
    }
    optimizer.step(params);
    result.losses.push_back(s.loss);
    if (observer) observer({step + 1, options.steps, s.loss, lr, batch.total_tokens()});
  }
  return result;
}

PretrainObserver pretrain_progress_printer(std::FILE* out, std::string prefix) {
  const auto start =
      std::make_shared<std::chrono::steady_clock::time_point>(std::chrono::steady_clock::now());
  const auto tokens = std::make_shared<int64_t>(0);
  return [=](const PretrainStepReport& s) {
    *tokens += s.tokens;
    const int64_t tenth = std::max<int64_t>(1, s.steps / 10);
    if (s.step != 1 && s.step != s.steps && s.step % tenth != 0) return;
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - *start).count();
    const double rate = seconds > 0 ? static_cast<double>(*tokens) / seconds : 0.0;
    const double eta =
        seconds / static_cast<double>(s.step) * static_cast<double>(s.steps - s.step);
    std::fprintf(out, "%spretraining: step %lld/%lld, loss %.4f, %.0f tok/s, ETA %.0f s\n",
                 prefix.c_str(), static_cast<long long>(s.step), static_cast<long long>(s.steps),
                 s.loss, rate, eta);
    std::fflush(out);
  };
}

std::vector<std::vector<int32_t>> document_windows(std::span<const std::string> texts,
                                                   const Tokenizer& tokenizer, int64_t seq_len) {
  if (seq_len < 2) throw ModelError("pretraining: windows need at least 2 tokens");
  std::vector<std::vector<int32_t>> out;
  for (const std::string& text : texts) {
    std::vector<int32_t> ids{tokenizer.bos_id()};
    const std::vector<int32_t> body = tokenizer.encode(text);
    ids.insert(ids.end(), body.begin(), body.end());
    ids.push_back(tokenizer.eos_id());
    for (size_t begin = 0; begin + 1 < ids.size(); begin += static_cast<size_t>(seq_len)) {
      const size_t end = std::min(ids.size(), begin + static_cast<size_t>(seq_len));
      out.emplace_back(ids.begin() + static_cast<std::ptrdiff_t>(begin),
                       ids.begin() + static_cast<std::ptrdiff_t>(end));
    }
  }
  if (out.empty()) throw ModelError("pretraining: the corpus gives no window of two tokens");
  return out;
}

}  // namespace model
