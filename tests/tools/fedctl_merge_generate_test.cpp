// Runs the built `fedctl generate`, `fedctl merge` and `fedctl train --base-model-name` on files
// the test writes (a random Llama from the project's writer and a random adapter over it):
// greedy generation is the argmax of the library's forward pass with the adapter, token for
// token; the merged model computes the adapted model's logits; refusals are exit 2 and one line
// naming the flag or the file, and a refused merge leaves no directory.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "fedctl_run.h"
#include "model/byte_tokenizer.h"
#include "model/float_backend.h"
#include "model/llama_model.h"
#include "model/llama_weights.h"
#include "model/lora_peft.h"
#include "model/projection.h"
#include "model/random_model.h"
#include "model/token_batch.h"
#include "test_util.h"

namespace {

namespace fs = std::filesystem;
using nlohmann::json;

using fedctl_test::fedctl;
using fedctl_test::Result;

// Hidden 16, 2 layers, grouped-query attention, vocabulary 300 (bytes), context 64.
model::LlamaConfig small_config() {
  return model_test::tiny_llama_config();
}

// An adapter of rank 4 on every projection with random A and B (B not zero: the adapter
// changes the model), alpha 8.
model::LoraParams random_adapter(const model::LlamaConfig& config, uint64_t seed) {
  model::LoraConfig lora;
  lora.rank = 4;
  lora.alpha = 8;
  lora.targets = model::parse_lora_targets("q,k,v,o,gate,up,down");
  model::LoraParams params(config, lora);
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal(0.0f, 0.3f);
  for (const model::ProjectionId id : params.ids()) {
    model::LoraPair& pair = params.at(id);
    for (int64_t i = 0; i < pair.a.size(); ++i) pair.a.data()[i] = normal(rng);
    for (int64_t i = 0; i < pair.b.size(); ++i) pair.b.data()[i] = normal(rng);
  }
  return params;
}

std::shared_ptr<const model::LlamaWeights> load(const fs::path& dir) {
  return std::make_shared<const model::LlamaWeights>(model::load_llama_weights(dir));
}

// Greedy decoding by hand: the argmax of the last row of forward(prompt + tokens so far), until
// EOS (not kept) or `n` tokens.
std::vector<int32_t> argmax_tokens(model::LlamaModel& llama, const model::LoraParams* lora,
                                   std::vector<int32_t> sequence, int n) {
  std::vector<int32_t> out;
  for (int i = 0; i < n; ++i) {
    const model::Matrix logits = llama.forward(model::TokenBatch({sequence}), nullptr, lora);
    Eigen::Index best = 0;
    logits.row(logits.rows() - 1).maxCoeff(&best);
    const auto token = static_cast<int32_t>(best);
    if (token == model::ByteTokenizer::kEosId) break;
    out.push_back(token);
    sequence.push_back(token);
  }
  return out;
}

void expect_refusal(const Result& r, const std::string& command, const std::string& needle) {
  EXPECT_EQ(r.status, 2) << r.err;
  EXPECT_EQ(r.err.rfind("fedctl " + command + ": ", 0), 0u) << r.err;
  EXPECT_NE(r.err.find(needle), std::string::npos) << r.err;
  ASSERT_FALSE(r.err.empty());
  EXPECT_EQ(r.err.find('\n'), r.err.size() - 1) << r.err;
  EXPECT_TRUE(r.out.empty()) << r.out;
}

class FedctlAdapterUse : public ::testing::Test {
 protected:
  void SetUp() override {
    model::write_random_llama(dir_ / "m", small_config(), {.seed = 11});
    lora_ = random_adapter(small_config(), 5);
    model::write_lora_adapter(dir_ / "a", lora_, small_config(), "m");
    // What the merge reads back from the file (bit for bit what was written).
    lora_ = model::read_lora_adapter(dir_ / "a", small_config());
  }

  std::string model_dir() const { return (dir_ / "m").string(); }
  std::string adapter_dir() const { return (dir_ / "a").string(); }

  test_support::TempDir dir_;
  model::LoraParams lora_;
};

TEST_F(FedctlAdapterUse, GreedyGenerationIsTheArgmaxOfTheAdaptedForwardPass) {
  const Result r = fedctl("generate --model " + model_dir() + " --adapter " + adapter_dir() +
                          " --prompt 'The patient' --max-new-tokens 24 --json");
  ASSERT_EQ(r.status, 0) << r.err;
  const json j = json::parse(r.out);
  std::vector<int32_t> prompt = {model::ByteTokenizer::kBosId};
  for (const char c : std::string("The patient")) {
    prompt.push_back(model::ByteTokenizer::kFirstByteId + static_cast<unsigned char>(c));
  }
  EXPECT_EQ(j["prompt_tokens"].get<std::vector<int32_t>>(), prompt);

  const auto weights = load(dir_ / "m");
  model::LlamaModel llama(weights, std::make_unique<model::FloatBackend>(weights));
  const std::vector<int32_t> expected = argmax_tokens(llama, &lora_, prompt, 24);
  ASSERT_FALSE(expected.empty());
  EXPECT_EQ(j["tokens"].get<std::vector<int32_t>>(), expected);
  EXPECT_EQ(j["stopped"].get<bool>(), expected.size() < 24u);

  // The adapter matters: the base model alone continues differently.
  EXPECT_NE(argmax_tokens(llama, nullptr, prompt, 24), expected);

  // Without --json: the same tokens as text, decoded by the model's (byte) tokenizer.
  const Result text = fedctl("generate --model " + model_dir() + " --adapter " + adapter_dir() +
                             " --prompt 'The patient' --max-new-tokens 24");
  ASSERT_EQ(text.status, 0) << text.err;
  const model::ByteTokenizer bytes(small_config().vocab_size);
  EXPECT_EQ(text.out, bytes.decode(expected) + "\n");
}

TEST_F(FedctlAdapterUse, TopKSamplingIsSeededAndStaysInTheTopK) {
  const std::string cmd = "generate --model " + model_dir() + " --adapter " + adapter_dir() +
                          " --prompt 'ab' --max-new-tokens 16 --top-k 3 --temperature 2 --json";
  const Result a = fedctl(cmd + " --seed 7");
  const Result b = fedctl(cmd + " --seed 7");
  const Result c = fedctl(cmd + " --seed 8");
  ASSERT_EQ(a.status, 0) << a.err;
  ASSERT_EQ(b.status, 0) << b.err;
  ASSERT_EQ(c.status, 0) << c.err;
  EXPECT_EQ(a.out, b.out);
  const auto tokens = json::parse(a.out)["tokens"].get<std::vector<int32_t>>();
  EXPECT_NE(tokens, json::parse(c.out)["tokens"].get<std::vector<int32_t>>());

  // Every sampled token is one of the 3 largest logits after the sequence before it.
  const auto weights = load(dir_ / "m");
  model::LlamaModel llama(weights, std::make_unique<model::FloatBackend>(weights));
  std::vector<int32_t> sequence = json::parse(a.out)["prompt_tokens"].get<std::vector<int32_t>>();
  for (const int32_t token : tokens) {
    const model::Matrix logits = llama.forward(model::TokenBatch({sequence}), nullptr, &lora_);
    const auto last = logits.row(logits.rows() - 1);
    int larger = 0;
    for (Eigen::Index v = 0; v < last.size(); ++v) larger += last(v) > last(token) ? 1 : 0;
    EXPECT_LT(larger, 3) << "token " << token;
    sequence.push_back(token);
  }
}

TEST_F(FedctlAdapterUse, MergedModelComputesTheAdaptedLogits) {
  // A tokenizer side file is copied unchanged.
  test_support::write_file(dir_ / "m" / "tokenizer_config.json", "{\"add_bos_token\": true}\n");
  const Result r = fedctl("merge --model " + model_dir() + " --adapter " + adapter_dir() +
                          " --out " + dir_ / "merged");
  ASSERT_EQ(r.status, 0) << r.err;
  const json summary = json::parse(r.out);
  EXPECT_EQ(summary["merged_projections"], 2 * 7);
  EXPECT_EQ(summary["copied"], json({"tokenizer_config.json"}));
  EXPECT_EQ(test_support::slurp(dir_ / "merged" / "tokenizer_config.json"),
            "{\"add_bos_token\": true}\n");
  EXPECT_TRUE(fs::exists(dir_ / "merged" / "model.safetensors"));
  EXPECT_FALSE(fs::exists(dir_ / "merged" / "adapter_config.json"));

  const auto base = load(dir_ / "m");
  const auto merged = load(dir_ / "merged");
  EXPECT_EQ(merged->config.hidden_size, base->config.hidden_size);
  EXPECT_EQ(merged->config.vocab_size, base->config.vocab_size);
  // Unadapted tensors are copied bit for bit; adapted ones moved by (alpha / r) B A.
  EXPECT_EQ(merged->embed_tokens, base->embed_tokens);
  EXPECT_EQ(merged->norm, base->norm);
  EXPECT_EQ(merged->layers[1].input_layernorm, base->layers[1].input_layernorm);
  const model::LoraPair& q1 = lora_.at({model::ProjectionKind::kQ, 1});
  const model::Matrix expected_q1 = base->layers[1].q_proj + 2.0f * (q1.b * q1.a);
  EXPECT_LT((merged->layers[1].q_proj - expected_q1).cwiseAbs().maxCoeff(), 1e-5f);

  const model::TokenBatch batch({{1, 40, 77, 120, 299, 3, 8, 200}, {1, 5, 6}});
  model::LlamaModel adapted(base, std::make_unique<model::FloatBackend>(base));
  model::LlamaModel folded(merged, std::make_unique<model::FloatBackend>(merged));
  const model::Matrix with_adapter = adapted.forward(batch, nullptr, &lora_);
  const model::Matrix without = adapted.forward(batch);
  const model::Matrix from_merged = folded.forward(batch);
  const float scale = with_adapter.cwiseAbs().maxCoeff();
  // The adapter moves the logits far more than the merge's rounding does.
  EXPECT_GT((with_adapter - without).cwiseAbs().maxCoeff(), 1e-2f * scale);
  EXPECT_LT((with_adapter - from_merged).cwiseAbs().maxCoeff(), 1e-5f * std::max(scale, 1.0f));

  // Greedy generation from the merged model is that of the base model with the adapter.
  const Result g1 = fedctl("generate --model " + dir_ / "merged" +
                           " --prompt 'The patient' --max-new-tokens 12 --json");
  const Result g2 = fedctl("generate --model " + model_dir() + " --adapter " + adapter_dir() +
                           " --prompt 'The patient' --max-new-tokens 12 --json");
  ASSERT_EQ(g1.status, 0) << g1.err;
  ASSERT_EQ(g2.status, 0) << g2.err;
  EXPECT_EQ(json::parse(g1.out)["tokens"], json::parse(g2.out)["tokens"]);
}

TEST_F(FedctlAdapterUse, MergeRefusesAMismatchedAdapterAndLeavesNoDirectory) {
  // An adapter trained on a wider model: its shapes do not fit.
  model::LlamaConfig wide = small_config();
  wide.hidden_size = 32;
  model::write_lora_adapter(dir_ / "wide", random_adapter(wide, 1), wide, "wide");
  const Result r = fedctl("merge --model " + model_dir() + " --adapter " + dir_ / "wide" +
                          " --out " + dir_ / "merged");
  expect_refusal(r, "merge", (dir_ / "wide").string());
  EXPECT_FALSE(fs::exists(dir_ / "merged"));
  for (const auto& entry : fs::directory_iterator(dir_.path())) {
    EXPECT_EQ(entry.path().filename().string().find(".partial"), std::string::npos) << entry.path();
  }

  // A missing model or adapter directory.
  expect_refusal(fedctl("merge --model " + dir_ / "nope" + " --adapter " + adapter_dir() +
                        " --out " + dir_ / "merged"),
                 "merge", "nope: the model directory does not exist");
  expect_refusal(fedctl("merge --model " + model_dir() + " --adapter " + dir_ / "nope" + " --out " +
                        dir_ / "merged"),
                 "merge", "nope: the adapter directory does not exist");
  EXPECT_FALSE(fs::exists(dir_ / "merged"));

  // An --out that holds something is left as it was; an empty one is filled.
  fs::create_directories(dir_ / "busy");
  test_support::write_file(dir_ / "busy" / "keep.txt", "mine");
  expect_refusal(fedctl("merge --model " + model_dir() + " --adapter " + adapter_dir() + " --out " +
                        dir_ / "busy"),
                 "merge", "is not an empty directory");
  EXPECT_EQ(test_support::slurp(dir_ / "busy" / "keep.txt"), "mine");
  fs::create_directories(dir_ / "empty");
  const Result ok = fedctl("merge --model " + model_dir() + " --adapter " + adapter_dir() +
                           " --out " + dir_ / "empty/");
  ASSERT_EQ(ok.status, 0) << ok.err;
  EXPECT_TRUE(fs::exists(dir_ / "empty" / "config.json"));
}

TEST_F(FedctlAdapterUse, GenerateRangeChecksEveryNumericFlagBeforeLoading) {
  struct Case {
    std::string flags, needle;
  };
  const std::vector<Case> cases = {
      {"--max-new-tokens 0", "--max-new-tokens must lie in [1, 1048576], got 0"},
      {"--max-new-tokens=-5", "--max-new-tokens must lie in [1, 1048576], got -5"},
      {"--max-new-tokens 2000000", "--max-new-tokens must lie in [1, 1048576]"},
      {"--top-k 0", "--top-k must lie in [1, 1048576]"},
      {"--top-k=-1", "--top-k must lie in [1, 1048576]"},
      {"--top-k 3 --temperature 0", "--temperature must lie in (0, 100], got 0"},
      {"--top-k 3 --temperature nan", "--temperature must lie in (0, 100], got nan"},
      {"--top-k 3 --temperature 1000", "--temperature must lie in (0, 100]"},
      {"--top-k 3 --seed=-1", "--seed must be an integer in [0, 18446744073709551615]"},
      {"--top-k 3 --seed 12x", "--seed must be an integer in [0, 18446744073709551615]"},
      {"--top-k many", "'--top-k'"},
  };
  for (const Case& c : cases) {
    // A model directory that does not exist: the flag is refused before anything is read.
    expect_refusal(fedctl("generate --model " + dir_ / "nope" + " --prompt hi " + c.flags),
                   "generate", c.needle);
  }
  // The context: the prompt and the new tokens must fit max_position_embeddings (64).
  expect_refusal(fedctl("generate --model " + model_dir() + " --prompt hi --max-new-tokens 62"),
                 "generate", "--max-new-tokens 62: the prompt's 3 tokens (BOS included)");
  const Result fits =
      fedctl("generate --model " + model_dir() + " --prompt hi --max-new-tokens 61");
  EXPECT_EQ(fits.status, 0) << fits.err;
  expect_refusal(
      fedctl("generate --model " + model_dir() + " --adapter " + dir_ / "nope" + " --prompt hi"),
      "generate", "nope");
}

TEST_F(FedctlAdapterUse, TrainWritesTheBaseModelNameGiven) {
  std::string notes;
  for (int i = 0; i < 8; ++i) notes += "{\"text\": \"note " + std::to_string(i) + " of a site\"}\n";
  test_support::write_file(dir_ / "notes.jsonl", notes);
  const std::string train = "train --model " + model_dir() + " --data " + dir_ / "notes.jsonl" +
                            " --steps 1 --seq-len 16 --batch 2 --lora-rank 2";
  Result r =
      fedctl(train + " --out " + dir_ / "named" + " --base-model-name meta-llama/Llama-3.2-1B");
  ASSERT_EQ(r.status, 0) << r.err;
  json config = json::parse(test_support::slurp(dir_ / "named" / "adapter_config.json"));
  EXPECT_EQ(config["base_model_name_or_path"], "meta-llama/Llama-3.2-1B");
  // The default stays the --model path.
  r = fedctl(train + " --out " + dir_ / "default");
  ASSERT_EQ(r.status, 0) << r.err;
  config = json::parse(test_support::slurp(dir_ / "default" / "adapter_config.json"));
  EXPECT_EQ(config["base_model_name_or_path"], model_dir());
}

}  // namespace
