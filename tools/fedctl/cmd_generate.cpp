// fedctl generate: text from a model, optionally adapted by a LoRA adapter, greedy or by seeded
// top-k sampling (library: model, generate.h).
//
//   fedctl generate --model base/ --adapter runs/x/adapter --prompt "Discharge summary:"
//   fedctl generate --model merged/ --prompt "..." --top-k 40 --temperature 0.8 --seed 7
//
// The prompt is tokenized as `fedctl eval` and `fedctl forward --text` do (the model
// directory's tokenizer.model or tokenizer.json, else bytes; BOS first). The continuation is
// printed as it is generated; generation ends at EOS (the tokenizer's and config.json's) or
// after --max-new-tokens tokens.
#include <algorithm>
#include <charconv>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <limits>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "cli.h"
#include "model/generate.h"
#include "model/linear_backends.h"
#include "model/llama_model.h"
#include "model/llama_weights.h"
#include "model/lora_peft.h"
#include "model/tokenizer.h"

namespace fedctl {
namespace {

struct GenerateFlags {
  std::string model_dir, adapter, prompt, backend, seed;
  int64_t max_new_tokens = 0, top_k = 0;
  double temperature = 0;
  bool json = false;
};

// The sampling options, every numeric flag range-checked (std::invalid_argument naming the flag
// and its range: exit 2) before anything is loaded.
model::GenerationOptions checked_options(const GenerateFlags& f) {
  model::GenerationOptions o;
  if (f.max_new_tokens < 1 || f.max_new_tokens > model::kMaxNewTokens) {
    throw std::invalid_argument("--max-new-tokens must lie in [1, " +
                                std::to_string(model::kMaxNewTokens) + "], got " +
                                std::to_string(f.max_new_tokens));
  }
  if (f.top_k < 1 || f.top_k > model::kMaxTopK) {
    throw std::invalid_argument("--top-k must lie in [1, " + std::to_string(model::kMaxTopK) +
                                "] (1: greedy), got " + std::to_string(f.top_k));
  }
  if (!(f.temperature > 0 && f.temperature <= model::kMaxTemperature)) {
    char got[32];
    std::snprintf(got, sizeof got, "%g", f.temperature);
    throw std::invalid_argument(std::string("--temperature must lie in (0, 100], got ") + got);
  }
  uint64_t seed = 0;
  const char* end = f.seed.data() + f.seed.size();
  const auto [ptr, ec] = std::from_chars(f.seed.data(), end, seed);
  if (f.seed.empty() || ec != std::errc() || ptr != end) {
    throw std::invalid_argument("--seed must be an integer in [0, " +
                                std::to_string(std::numeric_limits<uint64_t>::max()) + "], got '" +
                                f.seed + "'");
  }
  o.max_new_tokens = f.max_new_tokens;
  o.top_k = f.top_k;
  o.temperature = f.temperature;
  o.seed = seed;
  return o;
}

// Prints the continuation as it grows: the decoded text of the tokens so far, from where the
// last print ended, once the earlier text is its prefix and it does not end in U+FFFD (the
// first bytes of a character whose last byte is still to come decode to it).
class StreamPrinter {
 public:
  explicit StreamPrinter(const model::Tokenizer& tokenizer) : tokenizer_(tokenizer) {}

  void add(int32_t token) {
    tokens_.push_back(token);
    const std::string text = tokenizer_.decode(tokens_);
    const std::string_view replacement = "\xEF\xBF\xBD";
    if (!text.ends_with(replacement)) print(text);
  }
  // Prints what is left of `text` (the whole continuation) and a newline.
  void finish(const std::string& text) {
    print(text);
    std::fputc('\n', stdout);
    std::fflush(stdout);
  }

 private:
  void print(const std::string& text) {
    if (text.size() <= printed_.size() || !text.starts_with(printed_)) return;
    std::fwrite(text.data() + printed_.size(), 1, text.size() - printed_.size(), stdout);
    std::fflush(stdout);
    printed_ = text;
  }

  const model::Tokenizer& tokenizer_;
  std::vector<int32_t> tokens_;
  std::string printed_;
};

int generate(const GenerateFlags& f, const po::variables_map& vm) {
  model::GenerationOptions options = checked_options(f);
  const model::BackendKind kind = model::parse_backend_kind(f.backend);
  auto weights =
      std::make_shared<const model::LlamaWeights>(model::load_llama_weights(f.model_dir));
  const model::LlamaConfig& config = weights->config;
  std::optional<model::LoraParams> lora;
  if (vm.count("adapter")) lora.emplace(model::read_lora_adapter(f.adapter, config));
  const auto tokenizer = model::load_tokenizer(f.model_dir, config.vocab_size);

  std::vector<int32_t> prompt = {tokenizer->bos_id()};
  const std::vector<int32_t> encoded = tokenizer->encode(f.prompt);
  prompt.insert(prompt.end(), encoded.begin(), encoded.end());
  const auto prompt_len = static_cast<int64_t>(prompt.size());
  if (prompt_len + options.max_new_tokens > config.max_position_embeddings) {
    throw std::invalid_argument(
        "--max-new-tokens " + std::to_string(options.max_new_tokens) + ": the prompt's " +
        std::to_string(prompt_len) + " tokens (BOS included) and the new tokens exceed the " +
        "model's context of " + std::to_string(config.max_position_embeddings) +
        " (max_position_embeddings)");
  }
  options.stop_tokens.push_back(tokenizer->eos_id());
  for (const int64_t id : config.eos_token_id)
    options.stop_tokens.push_back(static_cast<int32_t>(id));

  model::LlamaModel llama(weights, model::make_linear_backend(kind, weights));
  StreamPrinter printer(*tokenizer);
  std::function<void(int32_t)> on_token;
  if (!f.json) {
    on_token = [&](int32_t token) {
      const bool stop = std::find(options.stop_tokens.begin(), options.stop_tokens.end(), token) !=
                        options.stop_tokens.end();
      if (!stop) printer.add(token);
    };
  }
  const model::GenerationResult result =
      model::generate(llama, lora ? &*lora : nullptr, prompt, options, on_token);
  const std::string text = tokenizer->decode(result.tokens);
  if (!f.json) {
    printer.finish(text);
    return 0;
  }
  const nlohmann::json summary = {{"prompt_tokens", prompt},
                                  {"tokens", result.tokens},
                                  {"text", text},
                                  {"stopped", result.stopped}};
  // Generated bytes need not be valid UTF-8: such bytes print as U+FFFD.
  std::printf("%s\n",
              summary.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
  return 0;
}

}  // namespace

int cmd_generate(int argc, char** argv) {
  GenerateFlags f;
  po::options_description options("generate options");
  options.add_options()("model", po::value(&f.model_dir)->required(),
                        "model directory (config.json + safetensors checkpoint; its tokenizer)")(
      "adapter", po::value(&f.adapter),
      "LoRA adapter directory in PEFT layout, added to the projections it targets")(
      "prompt", po::value(&f.prompt)->required(),
      "text to continue (tokenized with the model's tokenizer, BOS first)")(
      "max-new-tokens", po::value(&f.max_new_tokens)->default_value(64),
      "most tokens to generate, in [1, 1048576]; prompt + these must fit the model's context")(
      "top-k", po::value(&f.top_k)->default_value(1),
      "1: greedy (the largest logit); K > 1: sample among the K largest logits, in [1, 1048576]")(
      "temperature", po::value(&f.temperature)->default_value(1.0, "1"),
      "with --top-k > 1: softmax(logit / T), T in (0, 100]")(
      "seed", po::value(&f.seed)->default_value("0"),
      "with --top-k > 1: seed of the sampling, in [0, 2^64 - 1] (the same seed, the same text)")(
      "backend", po::value(&f.backend)->default_value("float"),
      "how the frozen projections run: float, int8 or encrypted")(
      "json", po::bool_switch(&f.json),
      "print {\"prompt_tokens\", \"tokens\", \"text\", \"stopped\"} at the end instead of the "
      "text as it comes");
  return run_command(
      "generate",
      "--model DIR [--adapter DIR] --prompt TEXT [--max-new-tokens N] "
      "[--top-k K --temperature T --seed S] [--json]\n\n"
      "Prints the continuation of the prompt, greedy by default, and stops at EOS or after "
      "--max-new-tokens. There is no KV cache: every new token runs the whole forward pass over "
      "the prompt and the tokens so far (fine for small models, slow for a 1B one).",
      options, argc, argv, [&](const po::variables_map& vm) { return generate(f, vm); });
}

}  // namespace fedctl
