#include "model/generate.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <numeric>
#include <string>

#include "model/error.h"
#include "model/token_batch.h"

namespace model {

void validate_generation_options(const GenerationOptions& o) {
  if (o.max_new_tokens < 0 || o.max_new_tokens > kMaxNewTokens) {
    throw ModelError("generation: max_new_tokens must lie in [0, " + std::to_string(kMaxNewTokens) +
                     "], got " + std::to_string(o.max_new_tokens));
  }
  if (o.top_k < 1 || o.top_k > kMaxTopK) {
    throw ModelError("generation: top_k must lie in [1, " + std::to_string(kMaxTopK) + "], got " +
                     std::to_string(o.top_k));
  }
  if (!(o.temperature > 0 && o.temperature <= kMaxTemperature)) {
    char got[32];
    std::snprintf(got, sizeof got, "%g", o.temperature);
    throw ModelError(std::string("generation: temperature must lie in (0, 100], got ") + got);
  }
}

int32_t next_token(std::span<const float> logits, const GenerationOptions& o,
                   std::mt19937_64& rng) {
  validate_generation_options(o);
  if (logits.empty()) throw ModelError("generation: no logits");
  const auto n = static_cast<int64_t>(logits.size());
  if (o.top_k == 1) {
    int64_t best = 0;
    for (int64_t i = 1; i < n; ++i) {
      if (logits[static_cast<size_t>(i)] > logits[static_cast<size_t>(best)]) best = i;
    }
    return static_cast<int32_t>(best);
  }
  const int64_t k = std::min(o.top_k, n);
  std::vector<int32_t> ids(static_cast<size_t>(n));
  std::iota(ids.begin(), ids.end(), 0);
  const auto larger = [&](int32_t a, int32_t b) {
    const float la = logits[static_cast<size_t>(a)], lb = logits[static_cast<size_t>(b)];
    return la > lb || (la == lb && a < b);
  };
  std::partial_sort(ids.begin(), ids.begin() + k, ids.end(), larger);
  const double top = logits[static_cast<size_t>(ids[0])];
  std::vector<double> weights(static_cast<size_t>(k));
  double total = 0;
  for (int64_t i = 0; i < k; ++i) {
    const double l = logits[static_cast<size_t>(ids[static_cast<size_t>(i)])];
    weights[static_cast<size_t>(i)] = std::exp((l - top) / o.temperature);
    total += weights[static_cast<size_t>(i)];
  }
  const double u = static_cast<double>(rng() >> 11) * 0x1.0p-53 * total;  // [0, total)
  double cumulative = 0;
  for (int64_t i = 0; i < k; ++i) {
    cumulative += weights[static_cast<size_t>(i)];
    if (u < cumulative) return ids[static_cast<size_t>(i)];
  }
  return ids[static_cast<size_t>(k - 1)];  // rounding left u at the very top
}

GenerationResult generate(LlamaModel& llama, const LoraParams* lora,
                          std::span<const int32_t> prompt, const GenerationOptions& options,
                          const std::function<void(int32_t)>& on_token) {
  validate_generation_options(options);
  const LlamaConfig& config = llama.config();
  if (prompt.empty()) throw ModelError("generation: the prompt holds no token");
  const auto prompt_len = static_cast<int64_t>(prompt.size());
  if (prompt_len + options.max_new_tokens > config.max_position_embeddings) {
    throw ModelError("generation: the prompt's " + std::to_string(prompt_len) + " tokens and " +
                     std::to_string(options.max_new_tokens) +
                     " new tokens exceed the model's context of " +
                     std::to_string(config.max_position_embeddings) + " (max_position_embeddings)");
  }
  std::vector<int32_t> sequence(prompt.begin(), prompt.end());
  validate_token_batch(TokenBatch({sequence}), config);
  if (lora) lora->check_fits(config);
  std::mt19937_64 rng(options.seed);
  GenerationResult result;
  for (int64_t step = 0; step < options.max_new_tokens; ++step) {
    const Matrix logits = llama.forward(TokenBatch({sequence}), nullptr, lora);
    const Eigen::Index last = logits.rows() - 1;
    const std::span<const float> row(logits.row(last).data(), static_cast<size_t>(logits.cols()));
    const int32_t token = next_token(row, options, rng);
    if (on_token) on_token(token);
    if (std::find(options.stop_tokens.begin(), options.stop_tokens.end(), token) !=
        options.stop_tokens.end()) {
      result.stopped = true;
      break;
    }
    result.tokens.push_back(token);
    sequence.push_back(token);
  }
  return result;
}

}  // namespace model
