// Runs the built `fedctl forward`: JSON shape and values, backends, and refusals.
#include <gtest/gtest.h>

#include <cstdlib>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "fedctl_run.h"
#include "model/float_backend.h"
#include "model/llama_model.h"
#include "model/llama_weights.h"
#include "test_util.h"

namespace {

using model_test::TempDir;
using nlohmann::json;

using fedctl_test::fedctl;
using fedctl_test::Result;

void expect_refusal(const Result& r, const std::string& needle) {
  EXPECT_EQ(r.status, 2) << r.err;
  EXPECT_EQ(r.err.rfind("fedctl forward: ", 0), 0u) << r.err;
  EXPECT_NE(r.err.find(needle), std::string::npos) << r.err;
  ASSERT_FALSE(r.err.empty());
  EXPECT_EQ(r.err.find('\n'), r.err.size() - 1) << r.err;
  EXPECT_TRUE(r.out.empty()) << r.out;
}

class FedctlForward : public ::testing::Test {
 protected:
  void SetUp() override {
    model_dir_ = (dir_ / "m").string();
    const Result made = fedctl("make-model --out " + model_dir_ +
                               " --hidden 32 --layers 2 --heads 4 --kv-heads 2"
                               " --intermediate 64 --vocab 300 --max-pos 8 --seed 3");
    ASSERT_EQ(made.status, 0) << made.err;
  }
  Result forward(const std::string& args) {
    return fedctl("forward --model " + model_dir_ + " " + args);
  }

  TempDir dir_;
  std::string model_dir_;
};

TEST_F(FedctlForward, PrintsOneRowOfLogitsPerPosition) {
  const Result r = forward("--tokens '1 17 299 4'");
  ASSERT_EQ(r.status, 0) << r.err;
  const json j = json::parse(r.out);
  EXPECT_EQ(j["tokens"], json({1, 17, 299, 4}));
  ASSERT_EQ(j["logits"].size(), 4u);
  for (const auto& row : j["logits"]) ASSERT_EQ(row.size(), 300u);

  // The printed floats round-trip to the library's logits exactly.
  auto w = std::make_shared<const model::LlamaWeights>(model::load_llama_weights(model_dir_));
  model::LlamaModel llama(w, std::make_unique<model::FloatBackend>(w));
  const model::Matrix logits = llama.forward(model::TokenBatch({{1, 17, 299, 4}}));
  for (int t = 0; t < 4; ++t) {
    for (int v = 0; v < 300; ++v) ASSERT_EQ(j["logits"][t][v].get<float>(), logits(t, v));
  }
}

TEST_F(FedctlForward, TextGetsBosAndByteTokens) {
  const Result r = forward("--text 'hi'");
  ASSERT_EQ(r.status, 0) << r.err;
  const json j = json::parse(r.out);
  EXPECT_EQ(j["tokens"], json({1, 3 + 'h', 3 + 'i'}));  // BOS, then byte b as id 3 + b
  EXPECT_EQ(j["logits"].size(), 3u);
}

TEST_F(FedctlForward, EncryptedPrintsExactlyWhatInt8Prints) {
  const Result a = forward("--tokens '5 6 7' --backend int8");
  const Result b = forward("--tokens '5 6 7' --backend encrypted");
  const Result f = forward("--tokens '5 6 7' --backend float");
  ASSERT_EQ(a.status, 0) << a.err;
  ASSERT_EQ(b.status, 0) << b.err;
  ASSERT_EQ(f.status, 0) << f.err;
  EXPECT_EQ(a.out, b.out);
  EXPECT_NE(a.out, f.out);
  EXPECT_EQ(json::parse(b.out)["logits"].size(), 3u);
}

TEST_F(FedctlForward, RefusesBadInput) {
  expect_refusal(fedctl("forward --model " + (dir_ / "missing").string() + " --tokens 1"),
                 "missing");
  expect_refusal(forward("--tokens '1 300'"), "token id 300");
  expect_refusal(forward("--tokens '1 -2'"), "token id -2");
  expect_refusal(forward("--tokens '1 x'"), "'x' is not a token id");
  expect_refusal(forward("--tokens ''"), "no token id");
  expect_refusal(forward("--tokens '   '"), "no token id");
  expect_refusal(forward("--text ''"), "--text is empty");
  expect_refusal(forward(""), "exactly one of --tokens and --text");
  expect_refusal(forward("--tokens 1 --text a"), "exactly one of --tokens and --text");
  expect_refusal(forward("--tokens '1 2 3 4 5 6 7 8 9'"), "max_position_embeddings 8");
  expect_refusal(forward("--tokens 1 --backend fp16"), "unknown backend 'fp16'");
  expect_refusal(forward("--tokens 1 --adapter " + (dir_ / "a").string()), "adapter_config.json");
}

TEST_F(FedctlForward, HelpMentionsBackendsAndAdapter) {
  const Result r = fedctl("forward --help");
  EXPECT_EQ(r.status, 0);
  EXPECT_NE(r.out.find("float, int8"), std::string::npos);
  EXPECT_NE(r.out.find("PEFT layout"), std::string::npos);
}

}  // namespace
