#include "model/llama_weights.h"

#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

#include "model/error.h"
#include "model/llama_layout.h"
#include "model/safetensors_writer.h"
#include "test_util.h"

namespace {

using model::DType;
using model::LlamaConfig;
using model_test::TempDir;

// Writes a checkpoint for `config` whose tensor `t` holds the values 1000 * t + i, after
// `edit` has had a chance to drop, add or reshape tensors.
struct Checkpoint {
  std::vector<model::ExpectedTensor> tensors;
  std::vector<std::vector<float>> values;

  explicit Checkpoint(const LlamaConfig& config) : tensors(model::llama_tensor_layout(config)) {}

  void write(const TempDir& dir, DType dtype = DType::kF32) {
    values.clear();
    std::vector<model::TensorToWrite> out;
    for (size_t t = 0; t < tensors.size(); ++t) {
      int64_t n = 1;
      for (int64_t d : tensors[t].shape) n *= d;
      std::vector<float> v(static_cast<size_t>(n));
      for (int64_t i = 0; i < n; ++i) v[i] = static_cast<float>(t) + static_cast<float>(i % 7) / 8;
      values.push_back(std::move(v));
    }
    for (size_t t = 0; t < tensors.size(); ++t) {
      out.push_back({tensors[t].name, dtype, tensors[t].shape, values[t]});
    }
    model::write_safetensors(dir / model::kSingleCheckpointFile, out);
  }
  const std::vector<float>& of(const std::string& name) const {
    for (size_t t = 0; t < tensors.size(); ++t) {
      if (tensors[t].name == name) return values[t];
    }
    throw std::runtime_error("no " + name);
  }
};

std::string load_error(const TempDir& dir, const LlamaConfig& config) {
  try {
    model::load_llama_weights(model::TensorStore::open(dir.path()), config);
  } catch (const model::ModelError& e) {
    return e.what();
  }
  return "(loaded)";
}

TEST(LlamaLayout, NamesAndShapes) {
  const auto c = model_test::tiny_llama_config();
  const auto layout = model::llama_tensor_layout(c);
  ASSERT_EQ(layout.size(), 1 + 2 * 9 + 2u);
  EXPECT_EQ(layout.front().name, "model.embed_tokens.weight");
  EXPECT_EQ(layout.front().shape, (std::vector<int64_t>{300, 16}));
  EXPECT_EQ(layout.back().name, "lm_head.weight");
  std::map<std::string, std::vector<int64_t>> shapes;
  int64_t total = 0;
  for (const auto& t : layout) {
    shapes[t.name] = t.shape;
    int64_t n = 1;
    for (int64_t d : t.shape) n *= d;
    total += n;
  }
  EXPECT_EQ(shapes["model.layers.1.self_attn.q_proj.weight"], (std::vector<int64_t>{16, 16}));
  EXPECT_EQ(shapes["model.layers.1.self_attn.k_proj.weight"], (std::vector<int64_t>{8, 16}));
  EXPECT_EQ(shapes["model.layers.1.self_attn.o_proj.weight"], (std::vector<int64_t>{16, 16}));
  EXPECT_EQ(shapes["model.layers.0.mlp.down_proj.weight"], (std::vector<int64_t>{16, 40}));
  EXPECT_EQ(shapes["model.layers.0.post_attention_layernorm.weight"], std::vector<int64_t>{16});
  EXPECT_EQ(total, c.parameter_count());

  auto tied = c;
  tied.tie_word_embeddings = true;
  EXPECT_EQ(model::llama_tensor_layout(tied).back().name, "model.norm.weight");
  EXPECT_TRUE(model::is_ignored_llama_buffer("model.layers.0.self_attn.rotary_emb.inv_freq"));
  EXPECT_FALSE(model::is_ignored_llama_buffer("model.layers.0.self_attn.q_proj.weight"));
}

TEST(LlamaWeights, LoadsEveryTensorInPlace) {
  TempDir dir;
  const auto c = model_test::tiny_llama_config();
  Checkpoint ckpt(c);
  ckpt.write(dir, DType::kBF16);  // the test values are exact in bfloat16
  const auto w = model::load_llama_weights(model::TensorStore::open(dir.path()), c);
  ASSERT_EQ(w.layers.size(), 2u);
  EXPECT_EQ(w.embed_tokens.rows(), 300);
  EXPECT_EQ(w.embed_tokens.cols(), 16);
  const auto& k = ckpt.of("model.layers.1.self_attn.k_proj.weight");
  ASSERT_EQ(w.layers[1].k_proj.rows(), 8);
  ASSERT_EQ(w.layers[1].k_proj.cols(), 16);
  // Row-major: element (r, c) is the checkpoint's element r * d_in + c.
  EXPECT_EQ(w.layers[1].k_proj(3, 5), k[3 * 16 + 5]);
  EXPECT_EQ(std::vector<float>(w.layers[1].k_proj.data(), w.layers[1].k_proj.data() + k.size()), k);
  const auto& down = ckpt.of("model.layers.0.mlp.down_proj.weight");
  EXPECT_EQ(w.layers[0].down_proj(15, 39), down.back());
  EXPECT_EQ(w.norm(2), ckpt.of("model.norm.weight")[2]);
  EXPECT_EQ(w.layers[0].post_attention_layernorm(0),
            ckpt.of("model.layers.0.post_attention_layernorm.weight")[0]);
  EXPECT_EQ(w.lm_head()(299, 15), ckpt.of("lm_head.weight").back());
}

TEST(LlamaWeights, TiedEmbeddingsShareTheMatrix) {
  TempDir dir;
  auto c = model_test::tiny_llama_config();
  c.tie_word_embeddings = true;
  Checkpoint ckpt(c);
  ckpt.write(dir);
  const auto w = model::load_llama_weights(model::TensorStore::open(dir.path()), c);
  EXPECT_EQ(&w.lm_head(), &w.embed_tokens);
  EXPECT_EQ(w.lm_head_weight.size(), 0);
}

TEST(LlamaWeights, DetectsAMissingTensor) {
  TempDir dir;
  const auto c = model_test::tiny_llama_config();
  Checkpoint ckpt(c);
  ckpt.tensors.erase(ckpt.tensors.begin() + 6);  // layer 0's post_attention_layernorm
  ckpt.write(dir);
  const std::string e = load_error(dir, c);
  EXPECT_NE(e.find("lacks tensor 'model.layers.0.post_attention_layernorm.weight' [16]"),
            std::string::npos)
      << e;
}

TEST(LlamaWeights, DetectsAnUnknownTensor) {
  TempDir dir;
  const auto c = model_test::tiny_llama_config();
  Checkpoint ckpt(c);
  ckpt.tensors.push_back({"model.layers.2.self_attn.q_proj.weight", {16, 16}});
  ckpt.write(dir);
  const std::string e = load_error(dir, c);
  EXPECT_NE(e.find("unknown tensor 'model.layers.2.self_attn.q_proj.weight'"), std::string::npos)
      << e;
}

TEST(LlamaWeights, IgnoresRotaryBuffers) {
  TempDir dir;
  const auto c = model_test::tiny_llama_config();
  Checkpoint ckpt(c);
  ckpt.tensors.push_back({"model.layers.0.self_attn.rotary_emb.inv_freq", {2}});
  ckpt.write(dir);
  EXPECT_EQ(load_error(dir, c), "(loaded)");
}

TEST(LlamaWeights, DetectsAWrongShape) {
  TempDir dir;
  const auto c = model_test::tiny_llama_config();
  Checkpoint ckpt(c);
  for (auto& t : ckpt.tensors) {
    if (t.name == "model.layers.1.self_attn.v_proj.weight") t.shape = {16, 16};  // MHA, not GQA
  }
  ckpt.write(dir);
  const std::string e = load_error(dir, c);
  EXPECT_NE(
      e.find("tensor 'model.layers.1.self_attn.v_proj.weight': shape [16, 16], expected [8, 16]"),
      std::string::npos)
      << e;
}

TEST(LlamaWeights, DetectsANonFloatDtype) {
  TempDir dir;
  const auto c = model_test::tiny_llama_config();
  Checkpoint ckpt(c);
  ckpt.write(dir);
  // Rewrite model.norm.weight's dtype in place: F32 [16] -> I32 [16] has the same byte size.
  std::string bytes = test_support::slurp(dir / model::kSingleCheckpointFile);
  const size_t at = bytes.find("\"model.norm.weight\":{\"dtype\":\"F32\"");
  ASSERT_NE(at, std::string::npos);
  bytes.replace(bytes.find("F32", at), 3, "I32");
  test_support::write_file(dir / model::kSingleCheckpointFile, bytes);
  const std::string e = load_error(dir, c);
  EXPECT_NE(e.find("'model.norm.weight': dtype I32 is not a float dtype"), std::string::npos) << e;
}

TEST(LlamaWeights, ConfigWithMoreLayersThanTheCheckpoint) {
  TempDir dir;
  auto c = model_test::tiny_llama_config();
  Checkpoint ckpt(c);
  ckpt.write(dir);
  c.num_hidden_layers = 3;
  const std::string e = load_error(dir, c);
  EXPECT_NE(e.find("lacks tensor 'model.layers.2.input_layernorm.weight' [16] (8 more tensors"),
            std::string::npos)
      << e;
}

}  // namespace
