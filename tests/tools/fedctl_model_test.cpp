// Runs the built fedctl: make-model then model-info, and both on bad input.
#include <gtest/gtest.h>

#include <cstdlib>
#include <nlohmann/json.hpp>
#include <string>

#include "fedctl_run.h"
#include "model/safetensors_writer.h"
#include "test_util.h"

namespace {

using model_test::TempDir;
using nlohmann::json;

using fedctl_test::fedctl;
using fedctl_test::Result;

// The analytic parameter count of a Llama model.
int64_t parameter_count(int64_t h, int64_t layers, int64_t heads, int64_t kv, int64_t head_dim,
                        int64_t inter, int64_t vocab, bool tied) {
  const int64_t q = heads * head_dim, k = kv * head_dim;
  const int64_t per_layer = 2 * h + h * q + 2 * h * k + q * h + 3 * h * inter;
  return vocab * h * (tied ? 1 : 2) + layers * per_layer + h;
}

// Expects exit status 2 and exactly one stderr line starting with "fedctl <command>: " and
// containing `needle`.
void expect_refusal(const Result& r, const std::string& command, const std::string& needle) {
  EXPECT_EQ(r.status, 2) << r.err;
  EXPECT_EQ(r.err.rfind("fedctl " + command + ": ", 0), 0u) << r.err;
  EXPECT_NE(r.err.find(needle), std::string::npos) << r.err;
  ASSERT_FALSE(r.err.empty());
  EXPECT_EQ(r.err.find('\n'), r.err.size() - 1) << r.err;
}

TEST(FedctlModel, MakeModelThenModelInfo) {
  TempDir dir;
  const auto m = (dir / "m").string();
  const Result made = fedctl("make-model --out " + m +
                             " --hidden 32 --layers 3 --heads 4 --kv-heads 2"
                             " --intermediate 88 --vocab 320 --seed 5 --dtype bf16");
  ASSERT_EQ(made.status, 0) << made.err;
  const Result info = fedctl("model-info --model " + m);
  ASSERT_EQ(info.status, 0) << info.err;
  const json j = json::parse(info.out);
  EXPECT_EQ(j["parameter_count"], parameter_count(32, 3, 4, 2, 8, 88, 320, false));
  EXPECT_EQ(j["config"]["model_type"], "llama");
  EXPECT_EQ(j["config"]["torch_dtype"], "bfloat16");
  EXPECT_EQ(j["config"]["num_key_value_heads"], 2);
  EXPECT_EQ(j["config"]["head_dim"], 8);
  EXPECT_EQ(j["config"]["rope_theta"], 10000.0);
  EXPECT_EQ(j["projections"]["q_proj"]["shape"], json({32, 32}));
  EXPECT_EQ(j["projections"]["k_proj"]["shape"], json({16, 32}));
  EXPECT_EQ(j["projections"]["v_proj"]["shape"], json({16, 32}));
  EXPECT_EQ(j["projections"]["o_proj"]["shape"], json({32, 32}));
  EXPECT_EQ(j["projections"]["gate_proj"]["shape"], json({88, 32}));
  EXPECT_EQ(j["projections"]["up_proj"]["shape"], json({88, 32}));
  EXPECT_EQ(j["projections"]["down_proj"]["shape"], json({32, 88}));
  EXPECT_EQ(j["projections"]["down_proj"]["dtype"], "BF16");
  EXPECT_EQ(j["tensor_count"], 1 + 3 * 9 + 2);
  EXPECT_EQ(j["tokenizer"], "byte");
}

TEST(FedctlModel, TiedHeadDimAndF16) {
  TempDir dir;
  const auto m = (dir / "m").string();
  const Result made = fedctl("make-model --out " + m +
                             " --hidden 24 --layers 2 --heads 4 --intermediate 40"
                             " --vocab 260 --tied --head-dim 10 --dtype f16"
                             " --rope-theta 500000 --max-pos 128");
  ASSERT_EQ(made.status, 0) << made.err;
  const Result info = fedctl("model-info --model " + m);
  ASSERT_EQ(info.status, 0) << info.err;
  const json j = json::parse(info.out);
  EXPECT_EQ(j["parameter_count"], parameter_count(24, 2, 4, 4, 10, 40, 260, true));
  EXPECT_EQ(j["config"]["tie_word_embeddings"], true);
  EXPECT_EQ(j["config"]["rope_theta"], 500000.0);
  EXPECT_EQ(j["config"]["max_position_embeddings"], 128);
  EXPECT_EQ(j["projections"]["q_proj"]["shape"], json({40, 24}));
  EXPECT_EQ(j["projections"]["o_proj"]["shape"], json({24, 40}));
  EXPECT_EQ(j["projections"]["q_proj"]["dtype"], "F16");
  EXPECT_EQ(j["dtypes"], json({{"F16", 1 + 2 * 9 + 1}}));
}

TEST(FedctlModel, HelpSucceeds) {
  TempDir dir;
  const Result r = fedctl("make-model --help");
  EXPECT_EQ(r.status, 0);
  EXPECT_NE(r.out.find("--kv-heads"), std::string::npos);
  EXPECT_EQ(fedctl("model-info --help").status, 0);
}

TEST(FedctlModel, MakeModelRefusesBadFlags) {
  TempDir dir;
  const std::string out = " --out " + (dir / "m").string();
  const std::string ok = " --layers 1 --intermediate 8 --vocab 300";
  expect_refusal(fedctl("make-model --hidden 16 --heads 4" + ok), "make-model", "out");
  expect_refusal(fedctl("make-model" + out + " --hidden 16 --heads 3" + ok), "make-model",
                 "--heads 3 does not divide --hidden 16");
  expect_refusal(fedctl("make-model" + out + " --hidden 16 --heads 4 --kv-heads 3" + ok),
                 "make-model", "--kv-heads 3 does not divide --heads 4");
  expect_refusal(fedctl("make-model" + out + " --hidden 0 --heads 4" + ok), "make-model",
                 "--hidden must be positive");
  expect_refusal(fedctl("make-model" + out + " --hidden -16 --heads 4" + ok), "make-model",
                 "--hidden must be positive");
  expect_refusal(fedctl("make-model" + out + " --hidden abc --heads 4" + ok), "make-model",
                 "hidden");
  expect_refusal(fedctl("make-model" + out + " --hidden 16 --heads 4 --dtype f64" + ok),
                 "make-model", "--dtype must be f32, f16 or bf16");
  expect_refusal(fedctl("make-model" + out + " --hidden 16 --heads 4 --bogus 1" + ok), "make-model",
                 "bogus");
  expect_refusal(fedctl("make-model" + out + " --hidden 16 --heads 4 --head-dim 3" + ok),
                 "make-model", "head_dim 3 must be even");
  expect_refusal(fedctl("make-model" + out +
                        " --hidden 16 --heads 4 --layers 1 --intermediate 8"
                        " --vocab 99999999999"),
                 "make-model", "absurd");
  EXPECT_FALSE(std::filesystem::exists(dir / "m" / "model.safetensors"));
}

class FedctlModelInfo : public ::testing::Test {
 protected:
  void SetUp() override {
    model_ = (dir_ / "m").string();
    ASSERT_EQ(fedctl("make-model --out " + model_ +
                     " --hidden 16 --layers 2 --heads 4 --kv-heads 2"
                     " --intermediate 24 --vocab 300")
                  .status,
              0);
    weights_ = std::filesystem::path(model_) / "model.safetensors";
    bytes_ = test_support::slurp(weights_);
  }
  Result info() { return fedctl("model-info --model " + model_); }

  TempDir dir_;
  std::string model_;
  std::filesystem::path weights_;
  std::string bytes_;
};

TEST_F(FedctlModelInfo, RefusesMissingDirectoriesAndFiles) {
  expect_refusal(fedctl("model-info"), "model-info", "model");
  expect_refusal(fedctl("model-info --model " + (dir_ / "nowhere").string()), "model-info",
                 "config.json: cannot open");
  std::filesystem::remove(weights_);
  expect_refusal(info(), "model-info", "no model.safetensors");
}

TEST_F(FedctlModelInfo, RefusesTruncatedWeights) {
  for (size_t len : {size_t{0}, size_t{5}, size_t{100}, bytes_.size() / 2, bytes_.size() - 1}) {
    test_support::write_file(weights_, bytes_.substr(0, len));
    expect_refusal(info(), "model-info", "model.safetensors");
  }
}

TEST_F(FedctlModelInfo, RefusesBadConfigs) {
  const auto config = std::filesystem::path(model_) / "config.json";
  json j = json::parse(test_support::slurp(config));
  test_support::write_file(config, "{\"model_type\": ");
  expect_refusal(info(), "model-info", "config.json: not valid JSON");

  json other = j;
  other["intermediate_size"] = 32;  // checkpoint holds 24
  test_support::write_file(config, other.dump());
  expect_refusal(info(), "model-info", "shape [24, 16], expected [32, 16]");

  other = j;
  other["num_hidden_layers"] = 1;  // checkpoint holds a second layer
  test_support::write_file(config, other.dump());
  expect_refusal(info(), "model-info", "unknown tensor 'model.layers.1.");

  other = j;
  other["tie_word_embeddings"] = true;  // lm_head stays and is ignored: still valid
  test_support::write_file(config, other.dump());
  EXPECT_EQ(info().status, 0);

  other = j;
  other["num_key_value_heads"] = 3;
  test_support::write_file(config, other.dump());
  expect_refusal(info(), "model-info", "num_key_value_heads 3 does not divide");
}

TEST_F(FedctlModelInfo, RefusesMissingUnknownAndNonFloatTensors) {
  std::string bytes = bytes_;
  const size_t at = bytes.find("\"model.norm.weight\":{\"dtype\":\"F32\"");
  ASSERT_NE(at, std::string::npos);
  bytes.replace(bytes.find("F32", at), 3, "I32");
  test_support::write_file(weights_, bytes);
  expect_refusal(info(), "model-info", "dtype I32 is not a float dtype");

  const std::vector<float> v = {1, 2};
  const model::TensorToWrite only[] = {{"model.norm.weight", model::DType::kF32, {2}, v}};
  model::write_safetensors(weights_, only);
  expect_refusal(info(), "model-info", "lacks tensor 'model.embed_tokens.weight'");
}

}  // namespace
