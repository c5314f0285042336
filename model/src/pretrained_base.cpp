#include "model/pretrained_base.h"

#include <openssl/sha.h>

#include <unistd.h>

#include <chrono>
#include <random>
#include <string>
#include <vector>

#include "atomic_write.h"
#include "model/byte_tokenizer.h"
#include "model/error.h"
#include "model/float_backend.h"
#include "model/general_corpus.h"
#include "model/llama_model.h"
#include "model/llama_weights.h"
#include "model/random_model.h"

namespace model {
namespace {

void validate_recipe(const BaseModelRecipe& r) {
  validate_llama_config(r.config, "pretrained base model");
  validate_pretrain_options(r.train);
  if (r.config.vocab_size < ByteTokenizer::kMinVocabSize) {
    throw ModelError("pretrained base model: the byte tokenizer needs a vocabulary of at least " +
                     std::to_string(ByteTokenizer::kMinVocabSize) + ", got " +
                     std::to_string(r.config.vocab_size));
  }
  if (r.documents < 20 || r.documents > kGeneralCorpusMaxCount) {
    throw ModelError("pretrained base model: documents must lie in [20, " +
                     std::to_string(kGeneralCorpusMaxCount) + "], got " +
                     std::to_string(r.documents));
  }
  if (r.seq_len < 2 || r.seq_len > r.config.max_position_embeddings) {
    throw ModelError("pretrained base model: seq_len must lie in [2, " +
                     std::to_string(r.config.max_position_embeddings) + "], got " +
                     std::to_string(r.seq_len));
  }
}

// Mean next-token loss of `llama` over `windows`, 64 at a time, weighted by predicted tokens.
double mean_loss(LlamaModel& llama, const TextDataset& windows) {
  double total = 0;
  int64_t predicted = 0;
  for (int64_t begin = 0; begin < windows.size(); begin += 64) {
    std::vector<int64_t> indices;
    for (int64_t i = begin; i < std::min(windows.size(), begin + 64); ++i) indices.push_back(i);
    const TokenBatch batch = windows.batch(indices);
    int64_t n = 0;
    for (const int64_t i : indices) n += static_cast<int64_t>(windows.example(i).size()) - 1;
    total += llama.loss(batch) * static_cast<double>(n);
    predicted += n;
  }
  return predicted > 0 ? total / static_cast<double>(predicted) : 0.0;
}

}  // namespace

nlohmann::json recipe_to_json(const BaseModelRecipe& r) {
  return {{"config", llama_config_to_json(r.config)},
          {"tokenizer", "bytes"},
          {"corpus", "general_corpus"},
          {"corpus_version", kGeneralCorpusVersion},
          {"documents", r.documents},
          {"corpus_seed", r.corpus_seed},
          {"init_seed", r.init_seed},
          {"seq_len", r.seq_len},
          {"steps", r.train.steps},
          {"batch_size", r.train.batch_size},
          {"lr", r.train.lr},
          {"warmup_steps", r.train.warmup_steps},
          {"weight_decay", r.train.weight_decay},
          {"order_seed", r.train.seed}};
}

std::string recipe_key(const BaseModelRecipe& recipe) {
  const std::string text = recipe_to_json(recipe).dump();
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(text.data()), text.size(), digest);
  static const char* digits = "0123456789abcdef";
  std::string hex;
  for (int i = 0; i < 8; ++i) {
    hex += digits[digest[i] >> 4];
    hex += digits[digest[i] & 15];
  }
  return hex;
}

BaseModelReport make_pretrained_base(const std::filesystem::path& dir,
                                     const BaseModelRecipe& recipe,
                                     const PretrainObserver& observer) {
  validate_recipe(recipe);
  std::error_code ec;
  if (std::filesystem::exists(dir, ec)) {
    throw ModelError(dir.string() + ": already exists; a base model is made into a new directory");
  }
  const auto start = std::chrono::steady_clock::now();
  const std::filesystem::path tmp =
      dir.parent_path() / (dir.filename().string() + ".partial-" + std::to_string(::getpid()));
  std::filesystem::remove_all(tmp, ec);
  try {
    write_random_llama(tmp, recipe.config, {.seed = recipe.init_seed});
    auto weights = std::make_shared<LlamaWeights>(load_llama_weights(tmp));

    const ByteTokenizer tokenizer(recipe.config.vocab_size);
    const std::vector<std::string> docs = general_corpus(recipe.corpus_seed, recipe.documents);
    std::vector<std::string> train_docs, heldout_docs;
    for (size_t i = 0; i < docs.size(); ++i) {
      (i % 20 == 19 ? heldout_docs : train_docs).push_back(docs[i]);
    }
    const TextDataset train(document_windows(train_docs, tokenizer, recipe.seq_len));
    const TextDataset heldout(document_windows(heldout_docs, tokenizer, recipe.seq_len));

    BaseModelReport report;
    report.windows = train.size();
    report.tokens = train.token_count();
    {
      LlamaModel before(weights, std::make_unique<FloatBackend>(weights));
      report.initial_heldout_loss = mean_loss(before, heldout);
    }
    const PretrainResult r = pretrain_llama(weights, train, recipe.train, observer);
    {
      LlamaModel after(weights, std::make_unique<FloatBackend>(weights));
      report.heldout_loss = mean_loss(after, heldout);
    }
    const size_t tail = std::min<size_t>(10, r.losses.size());
    for (size_t i = r.losses.size() - tail; i < r.losses.size(); ++i) {
      report.final_train_loss += r.losses[i] / static_cast<double>(tail);
    }
    std::filesystem::remove_all(tmp, ec);
    write_llama_weights(tmp, *weights);
    report.seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    nlohmann::json summary = {{"recipe", recipe_to_json(recipe)},
                              {"key", recipe_key(recipe)},
                              {"windows", report.windows},
                              {"tokens", report.tokens},
                              {"initial_heldout_loss", report.initial_heldout_loss},
                              {"heldout_loss", report.heldout_loss},
                              {"final_train_loss", report.final_train_loss},
                              {"seconds", report.seconds}};
    detail::write_text_file(tmp / "pretrain.json", summary.dump(2) + "\n");
    std::filesystem::rename(tmp, dir);
    return report;
  } catch (...) {
    std::filesystem::remove_all(tmp, ec);
    throw;
  }
}

}  // namespace model
