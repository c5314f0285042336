// Text generation with a Llama model, optionally adapted by LoRA: greedy decoding or seeded
// top-k sampling, one new token at a time.
//
//   model::GenerationOptions o;                 // greedy, 64 new tokens
//   o.stop_tokens = {tokenizer->eos_id()};
//   std::vector<int32_t> prompt = {tokenizer->bos_id()};
//   ... append tokenizer->encode(text) ...
//   const model::GenerationResult r = model::generate(llama, &lora, prompt, o);
//   std::string continuation = tokenizer->decode(r.tokens);
//
// There is no KV cache: every new token runs the whole forward pass (llama.forward) over the
// prompt and the tokens generated so far and reads the logits of the last position, so n new
// tokens after a prompt of p cost about n forward passes of p + n/2 tokens. That is fine for the
// small models of the tests and the simulation, slow for a real 1B model. In exchange each step
// is exactly `llama.forward` of the sequence so far: greedy generation is the argmax of the very
// logits `fedctl forward` prints.
#pragma once

#include <cstdint>
#include <functional>
#include <random>
#include <span>
#include <vector>

#include "model/llama_model.h"
#include "model/lora_params.h"

namespace model {

// Bounds of the options, for the command line's range checks.
inline constexpr int64_t kMaxNewTokens = int64_t{1} << 20;
inline constexpr int64_t kMaxTopK = int64_t{1} << 20;
inline constexpr double kMaxTemperature = 100.0;

struct GenerationOptions {
  int64_t max_new_tokens = 64;  // in [0, kMaxNewTokens]
  // 1: greedy, the largest logit (ties go to the lowest id). k > 1 (at most kMaxTopK): sample
  // among the k largest logits (ties broken towards lower ids; k is capped at the vocabulary),
  // with probabilities softmax(logit / temperature).
  int64_t top_k = 1;
  double temperature = 1.0;  // in (0, kMaxTemperature]; used only when top_k > 1
  uint64_t seed = 0;         // of the sampling RNG (std::mt19937_64; not a secret)
  // Generation ends after one of these tokens (which is not part of the result).
  std::vector<int32_t> stop_tokens;
};

struct GenerationResult {
  std::vector<int32_t> tokens;  // the new tokens, after the prompt, without a stop token
  bool stopped = false;         // ended at a stop token (else at max_new_tokens)
};

// Throws model::ModelError with one line naming the field and its allowed range for an option
// outside the bounds above (a NaN temperature included).
void validate_generation_options(const GenerationOptions& options);

// The next token from one position's logits (one per vocabulary id): greedy for top_k = 1, else
// top-k sampling drawing one u = (rng() >> 11) * 2^-53 from `rng`, so that a seed gives the same
// tokens on every platform. Throws model::ModelError for empty logits or invalid options.
int32_t next_token(std::span<const float> logits, const GenerationOptions& options,
                   std::mt19937_64& rng);

// Generates up to options.max_new_tokens tokens after `prompt` (which holds BOS if the model
// wants one), each from the last row of llama.forward(prompt + tokens so far, lora) and
// next_token with a std::mt19937_64 seeded by options.seed. `on_token` (may be empty) sees
// every new token as it is chosen (a stop token included). Throws model::ModelError for invalid
// options, an empty prompt, an id outside the vocabulary, a prompt plus max_new_tokens longer
// than the model's max_position_embeddings, or an adapter that does not fit the model.
GenerationResult generate(LlamaModel& llama, const LoraParams* lora,
                          std::span<const int32_t> prompt, const GenerationOptions& options,
                          const std::function<void(int32_t)>& on_token = {});

}  // namespace model
