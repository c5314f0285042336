// fedctl forward: the logits of a token sequence through a Llama model, optionally adapted by a
// LoRA adapter in PEFT layout (library: model).
#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "cli.h"
#include "model/linear_backends.h"
#include "model/llama_model.h"
#include "model/llama_weights.h"
#include "model/lora_peft.h"
#include "model/token_batch.h"
#include "model/tokenizer.h"

namespace fedctl {
namespace {

// Whitespace-separated token ids, each in [0, vocab).
std::vector<int32_t> parse_token_ids(const std::string& text, int64_t vocab) {
  std::vector<int32_t> ids;
  size_t i = 0;
  while (i < text.size()) {
    if (std::isspace(static_cast<unsigned char>(text[i]))) {
      ++i;
      continue;
    }
    size_t end = i;
    while (end < text.size() && !std::isspace(static_cast<unsigned char>(text[end]))) ++end;
    const std::string word = text.substr(i, end - i);
    int64_t id = 0;
    const auto [ptr, ec] = std::from_chars(word.data(), word.data() + word.size(), id);
    if (ec != std::errc() || ptr != word.data() + word.size()) {
      throw std::invalid_argument("--tokens: '" + word + "' is not a token id");
    }
    if (id < 0 || id >= vocab) {
      throw std::invalid_argument("--tokens: token id " + word + " is outside the vocabulary [0, " +
                                  std::to_string(vocab) + ")");
    }
    ids.push_back(static_cast<int32_t>(id));
    i = end;
  }
  if (ids.empty()) throw std::invalid_argument("--tokens holds no token id");
  return ids;
}

// {"tokens": [...], "logits": [[...], ...]} with every float printed to round-trip (%.9g).
void print_logits(const std::vector<int32_t>& tokens, const model::Matrix& logits) {
  std::string out = "{\"tokens\": [";
  for (size_t i = 0; i < tokens.size(); ++i) {
    if (i) out += ", ";
    out += std::to_string(tokens[i]);
  }
  out += "], \"logits\": [";
  char buf[32];
  for (int64_t t = 0; t < logits.rows(); ++t) {
    out += t ? ",\n  [" : "\n  [";
    for (int64_t v = 0; v < logits.cols(); ++v) {
      const float x = logits(t, v);
      if (!std::isfinite(x)) {
        throw std::runtime_error("logit " + std::to_string(v) + " of position " +
                                 std::to_string(t) + " is not finite");
      }
      const int n = std::snprintf(buf, sizeof buf, v ? ", %.9g" : "%.9g", static_cast<double>(x));
      out.append(buf, static_cast<size_t>(n));
    }
    out += "]";
  }
  out += "]}\n";
  std::fwrite(out.data(), 1, out.size(), stdout);
}

}  // namespace

int cmd_forward(int argc, char** argv) {
  std::string dir, tokens_flag, text, backend_flag, adapter;
  po::options_description options("forward options");
  options.add_options()("model", po::value(&dir)->required(),
                        "model directory (config.json + safetensors checkpoint)")(
      "tokens", po::value(&tokens_flag), "token ids separated by spaces, e.g. \"1 15 27\"")(
      "text", po::value(&text),
      "text to tokenize with the model's tokenizer (tokenizer.model, tokenizer.json, else bytes); "
      "BOS is "
      "prepended as Llama does")(
      "backend", po::value(&backend_flag)->default_value("float"),
      "how the frozen projections run: float, int8 (the exact int8 product of a worker) or "
      "encrypted (the same through RLWE encryption, in process)")(
      "adapter", po::value(&adapter),
      "LoRA adapter directory in PEFT layout (adapter_config.json + adapter_model.safetensors), "
      "added to the projections it targets");
  return run_command(
      "forward",
      "--model DIR (--tokens \"1 2 3\" | --text TEXT) [--backend float|int8|encrypted] "
      "[--adapter DIR]\n\n"
      "Prints {\"tokens\": [...], \"logits\": [[...], ...]}: one row of vocab_size logits per "
      "position.",
      options, argc, argv, [&](const po::variables_map& vm) {
        const bool has_tokens = vm.count("tokens") > 0;
        const bool has_text = vm.count("text") > 0;
        if (has_tokens == has_text) {
          throw std::invalid_argument("give exactly one of --tokens and --text");
        }
        const model::BackendKind kind = model::parse_backend_kind(backend_flag);
        auto weights = std::make_shared<const model::LlamaWeights>(model::load_llama_weights(dir));
        const model::LlamaConfig& config = weights->config;

        std::vector<int32_t> ids;
        if (has_tokens) {
          ids = parse_token_ids(tokens_flag, config.vocab_size);
        } else {
          if (text.empty()) throw std::invalid_argument("--text is empty");
          const auto tokenizer = model::load_tokenizer(dir, config.vocab_size);
          ids.push_back(tokenizer->bos_id());
          const std::vector<int32_t> encoded = tokenizer->encode(text);
          ids.insert(ids.end(), encoded.begin(), encoded.end());
        }
        const model::TokenBatch batch({ids});
        model::validate_token_batch(batch, config);  // before building a costly backend
        std::optional<model::LoraParams> lora;
        if (vm.count("adapter")) lora.emplace(model::read_lora_adapter(adapter, config));

        model::LlamaModel llama(weights, model::make_linear_backend(kind, weights));
        print_logits(ids, llama.forward(batch, nullptr, lora ? &*lora : nullptr));
        return 0;
      });
}

}  // namespace fedctl
