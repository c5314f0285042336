// PEFT adapter files: names, shapes, config, round trip, 16-bit tensors and every refusal.
#include "model/peft_adapter.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>

#include "model/error.h"
#include "model/safetensors_reader.h"
#include "model/safetensors_writer.h"
#include "test_support/expect_error.h"
#include "test_util.h"

namespace {

using model::PeftAdapter;
using model_test::TempDir;
using nlohmann::json;

// Every value distinct, so a transposed or misplaced factor is noticed.
PeftAdapter filled_adapter(int64_t r, const std::vector<std::string>& targets) {
  PeftAdapter a = model::make_peft_adapter(model_test::tiny_llama_config(), r, 16, targets);
  float x = 0.001f;
  for (auto& [site, f] : a.weights) {
    for (float& v : f.a) v = (x += 0.001f);
    for (float& v : f.b) v = -(x += 0.001f);
  }
  a.base_model_name_or_path = "meta-llama/Llama-2-7b-hf";
  return a;
}

// Expects `f` to throw a model::ModelError whose message contains `needle` and is one line.
template <class F>
void expect_error(F&& f, const std::string& needle) {
  test_support::expect_error<model::ModelError>(std::forward<F>(f), needle);
}

TEST(PeftAdapter, TensorNames) {
  EXPECT_EQ(model::peft_lora_tensor_name(3, "q_proj", 'A'),
            "base_model.model.model.layers.3.self_attn.q_proj.lora_A.weight");
  EXPECT_EQ(model::peft_lora_tensor_name(0, "down_proj", 'B'),
            "base_model.model.model.layers.0.mlp.down_proj.lora_B.weight");
  EXPECT_EQ(model::peft_lora_tensor_name(12, "gate_proj", 'A'),
            "base_model.model.model.layers.12.mlp.gate_proj.lora_A.weight");
  EXPECT_THROW(model::peft_lora_tensor_name(0, "lm_head", 'A'), model::ModelError);
  EXPECT_THROW(model::peft_lora_tensor_name(0, "q_proj", 'C'), model::ModelError);
}

TEST(PeftAdapter, MakeHasTheModelsShapes) {
  // tiny config: hidden 16, 4 heads of 4, 2 kv heads, intermediate 40, 2 layers.
  const PeftAdapter a = model::make_peft_adapter(model_test::tiny_llama_config(), 4, 8,
                                                 {"q_proj", "k_proj", "down_proj"});
  EXPECT_EQ(a.weights.size(), 6u);
  EXPECT_EQ(a.layer_count(), 2);
  EXPECT_EQ(a.scaling(), 2.0);
  const auto& k = a.weights.at({1, "k_proj"});
  EXPECT_EQ(k.d_in, 16);
  EXPECT_EQ(k.d_out, 8);
  EXPECT_EQ(k.a.size(), 4u * 16);
  EXPECT_EQ(k.b.size(), 8u * 4);
  const auto& down = a.weights.at({0, "down_proj"});
  EXPECT_EQ(down.d_in, 40);
  EXPECT_EQ(down.d_out, 16);
  EXPECT_THROW(model::make_peft_adapter(model_test::tiny_llama_config(), 0, 8, {"q_proj"}),
               model::ModelError);
  EXPECT_THROW(model::make_peft_adapter(model_test::tiny_llama_config(), 4, 8, {"lm_head"}),
               model::ModelError);
  EXPECT_THROW(model::make_peft_adapter(model_test::tiny_llama_config(), 4, 8, {}),
               model::ModelError);
}

TEST(PeftAdapter, WritesPeftLayoutAndReadsItBack) {
  TempDir dir;
  const PeftAdapter a = filled_adapter(4, {"q_proj", "v_proj", "up_proj"});
  model::write_peft_adapter(dir / "adapter", a);

  const json config = json::parse(test_support::slurp(dir / "adapter" / "adapter_config.json"));
  EXPECT_EQ(config["peft_type"], "LORA");
  EXPECT_EQ(config["task_type"], "CAUSAL_LM");
  EXPECT_EQ(config["r"], 4);
  EXPECT_TRUE(config["lora_alpha"].is_number_integer());
  EXPECT_EQ(config["lora_alpha"], 16);
  EXPECT_EQ(config["target_modules"], json({"q_proj", "v_proj", "up_proj"}));
  EXPECT_EQ(config["lora_dropout"], 0.0);
  EXPECT_EQ(config["bias"], "none");
  EXPECT_EQ(config["fan_in_fan_out"], false);
  EXPECT_EQ(config["inference_mode"], true);
  EXPECT_EQ(config["base_model_name_or_path"], "meta-llama/Llama-2-7b-hf");

  const model::SafetensorsReader file(dir / "adapter" / "adapter_model.safetensors");
  EXPECT_EQ(file.tensors().size(), 2u * 3 * 2);
  EXPECT_EQ(file.metadata().at("format"), "pt");
  const auto& qa = file.info("base_model.model.model.layers.1.self_attn.q_proj.lora_A.weight");
  EXPECT_EQ(qa.dtype, model::DType::kF32);
  EXPECT_EQ(qa.shape, (std::vector<int64_t>{4, 16}));
  EXPECT_EQ(file.info("base_model.model.model.layers.0.self_attn.v_proj.lora_B.weight").shape,
            (std::vector<int64_t>{8, 4}));
  EXPECT_EQ(file.info("base_model.model.model.layers.0.mlp.up_proj.lora_B.weight").shape,
            (std::vector<int64_t>{40, 4}));
  EXPECT_EQ(file.read_f32("base_model.model.model.layers.1.mlp.up_proj.lora_A.weight"),
            a.weights.at({1, "up_proj"}).a);

  EXPECT_EQ(model::read_peft_adapter(dir / "adapter"), a);
  EXPECT_EQ(model::read_peft_adapter(dir / "adapter", model_test::tiny_llama_config()), a);

  model::LlamaConfig wider = model_test::tiny_llama_config();
  wider.intermediate_size = 48;
  expect_error([&] { model::read_peft_adapter(dir / "adapter", wider); },
               "up_proj is 40 x 16, the model's is 48 x 16");
  model::LlamaConfig deeper = model_test::tiny_llama_config();
  deeper.num_hidden_layers = 3;
  expect_error([&] { model::read_peft_adapter(dir / "adapter", deeper); },
               "covers 2 layers, the model has 3");
}

TEST(PeftAdapter, ReadsHalfPrecisionTensors) {
  TempDir dir;
  PeftAdapter a = filled_adapter(2, {"o_proj"});
  for (auto& [site, f] : a.weights) {  // values exact in F16 and BF16
    for (size_t i = 0; i < f.a.size(); ++i) f.a[i] = 0.25f * static_cast<float>(i % 7) - 0.5f;
    for (size_t i = 0; i < f.b.size(); ++i) f.b[i] = 1.5f - 0.125f * static_cast<float>(i % 5);
  }
  model::write_peft_adapter(dir / "ad", a);
  std::vector<model::TensorToWrite> tensors;
  bool bf16 = false;
  for (const auto& [site, f] : a.weights) {
    const auto dtype = (bf16 = !bf16) ? model::DType::kBF16 : model::DType::kF16;
    tensors.push_back({model::peft_lora_tensor_name(site.layer, site.projection, 'A'),
                       dtype,
                       {a.r, f.d_in},
                       f.a});
    tensors.push_back({model::peft_lora_tensor_name(site.layer, site.projection, 'B'),
                       dtype,
                       {f.d_out, a.r},
                       f.b});
  }
  model::write_safetensors(dir / "ad" / "adapter_model.safetensors", tensors);
  EXPECT_EQ(model::read_peft_adapter(dir / "ad"), a);
}

class PeftAdapterRefusals : public ::testing::Test {
 protected:
  void SetUp() override {
    adapter_ = filled_adapter(4, {"q_proj", "v_proj"});
    model::write_peft_adapter(dir_ / "ad", adapter_);
    config_ = json::parse(test_support::slurp(config_path()));
  }
  std::filesystem::path config_path() const { return dir_ / "ad" / "adapter_config.json"; }
  std::filesystem::path weights_path() const { return dir_ / "ad" / "adapter_model.safetensors"; }
  void write_config(const json& j) { test_support::write_file(config_path(), j.dump()); }
  // Rewrites the weights with `adapter_`'s tensors, changed by `edit`.
  template <class Edit>
  void write_weights(Edit&& edit) {
    std::vector<std::string> names;
    std::vector<std::vector<int64_t>> shapes;
    std::vector<std::vector<float>> values;
    for (const auto& [site, f] : adapter_.weights) {
      names.push_back(model::peft_lora_tensor_name(site.layer, site.projection, 'A'));
      shapes.push_back({adapter_.r, f.d_in});
      values.push_back(f.a);
      names.push_back(model::peft_lora_tensor_name(site.layer, site.projection, 'B'));
      shapes.push_back({f.d_out, adapter_.r});
      values.push_back(f.b);
    }
    edit(names, shapes, values);
    std::vector<model::TensorToWrite> tensors;
    for (size_t i = 0; i < names.size(); ++i) {
      tensors.push_back({names[i], model::DType::kF32, shapes[i], values[i]});
    }
    model::write_safetensors(weights_path(), tensors);
  }
  void expect_refusal(const std::string& needle) {
    expect_error([&] { model::read_peft_adapter(dir_ / "ad"); }, needle);
  }

  TempDir dir_;
  PeftAdapter adapter_;
  json config_;
};

TEST_F(PeftAdapterRefusals, MissingFiles) {
  expect_error([&] { model::read_peft_adapter(dir_ / "nowhere"); },
               "adapter_config.json: cannot open");
  std::filesystem::remove(weights_path());
  expect_refusal("adapter_model.safetensors: cannot open");
}

TEST_F(PeftAdapterRefusals, BadConfigs) {
  test_support::write_file(config_path(), "{\"r\": ");
  expect_refusal("adapter_config.json: not valid JSON");
  const auto with = [&](const char* key, const json& value) {
    json j = config_;
    j[key] = value;
    write_config(j);
  };
  with("peft_type", "PREFIX_TUNING");
  expect_refusal("peft_type is not \"LORA\"");
  with("r", 0);
  expect_refusal("\"r\" must be a positive integer");
  with("r", 4.5);
  expect_refusal("\"r\" must be a positive integer");
  with("lora_alpha", "16");
  expect_refusal("\"lora_alpha\" must be a number");
  with("target_modules", ".*proj");
  expect_refusal("regular expression is not supported");
  with("target_modules", json({"q_proj", "lm_head"}));
  expect_refusal("unknown target module 'lm_head'");
  with("use_dora", true);
  expect_refusal("\"use_dora\" is not supported");
  with("rank_pattern", json({{"q_proj", 8}}));
  expect_refusal("\"rank_pattern\" is not supported");
  with("layers_to_transform", json({0}));
  expect_refusal("\"layers_to_transform\" is not supported");
  with("bias", "all");
  expect_refusal("bias other than \"none\"");

  // Fields PEFT writes that do not change the adapter are accepted.
  json j = config_;
  j["use_rslora"] = false;
  j["rank_pattern"] = json::object();
  j["layers_to_transform"] = nullptr;
  j["revision"] = nullptr;
  write_config(j);
  EXPECT_EQ(model::read_peft_adapter(dir_ / "ad"), adapter_);
}

TEST_F(PeftAdapterRefusals, RankMismatchAndWrongShapes) {
  json j = config_;
  j["r"] = 8;
  write_config(j);
  expect_refusal("has rank 4 (shape [4, 16]), adapter_config.json says r = 8");
  write_config(config_);

  // Tensors in name order: layer 0 q_proj A, B, layer 0 v_proj A, B, layer 1 ...
  write_weights([](auto& names, auto& shapes, auto& values) {
    shapes[3] = {4, 4};  // layer 0 v_proj lora_B: d_out 4, but layer 1 has 8
    values[3].resize(16);
    (void)names;
  });
  expect_refusal("shape differs from the same projection in another layer");

  write_weights([](auto& names, auto& shapes, auto& values) {
    shapes[0] = {4, 4, 4};
    values[0].resize(64);
    (void)names;
  });
  expect_refusal("expected a matrix");
}

TEST_F(PeftAdapterRefusals, UnknownMissingAndNonFloatTensors) {
  write_weights([](auto& names, auto& shapes, auto& values) {
    names.push_back("base_model.model.lm_head.weight");
    shapes.push_back({2});
    values.push_back({1, 2});
  });
  expect_refusal("unknown tensor 'base_model.model.lm_head.weight'");

  write_weights([](auto& names, auto&, auto&) {
    names[0] = "base_model.model.model.layers.0.mlp.q_proj.lora_A.weight";  // wrong group
  });
  expect_refusal("unknown tensor 'base_model.model.model.layers.0.mlp.q_proj.lora_A.weight'");

  write_weights([](auto& names, auto& shapes, auto& values) {
    names.push_back("base_model.model.model.layers.0.mlp.up_proj.lora_A.weight");
    shapes.push_back({4, 16});
    values.push_back(std::vector<float>(64));
  });
  expect_refusal("adapts up_proj, which is not in target_modules");

  write_weights([](auto& names, auto& shapes, auto& values) {
    names.erase(names.begin() + 1);  // layer 0 q_proj lora_B
    shapes.erase(shapes.begin() + 1);
    values.erase(values.begin() + 1);
  });
  expect_refusal("lacks tensor 'base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight'");

  write_weights([](auto& names, auto& shapes, auto& values) {
    names.resize(4);  // layer 0 only for q_proj and v_proj, then layer 1 v_proj alone
    shapes.resize(4);
    values.resize(4);
    names.push_back("base_model.model.model.layers.1.self_attn.v_proj.lora_A.weight");
    shapes.push_back({4, 16});
    values.push_back(std::vector<float>(64));
    names.push_back("base_model.model.model.layers.1.self_attn.v_proj.lora_B.weight");
    shapes.push_back({8, 4});
    values.push_back(std::vector<float>(32));
  });
  expect_refusal("layer 1 lacks q_proj");

  model::write_peft_adapter(dir_ / "ad", adapter_);
  std::string bytes = test_support::slurp(weights_path());
  const size_t at =
      bytes.find("\"base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight\"");
  ASSERT_NE(at, std::string::npos);
  bytes.replace(bytes.find("F32", at), 3, "I32");
  test_support::write_file(weights_path(), bytes);
  expect_refusal("has dtype I32, not F32, F16 or BF16");
}

TEST_F(PeftAdapterRefusals, WriteValidatesTheAdapter) {
  PeftAdapter a = adapter_;
  a.weights.erase({1, "v_proj"});
  expect_error([&] { model::write_peft_adapter(dir_ / "w", a); }, "layer 1 lacks v_proj");
  a = adapter_;
  a.weights.at({0, "q_proj"}).a.pop_back();
  expect_error([&] { model::write_peft_adapter(dir_ / "w", a); }, "do not match r 4");
  a = adapter_;
  a.target_modules = {"q_proj"};
  expect_error([&] { model::write_peft_adapter(dir_ / "w", a); },
               "layer 0 v_proj: projection not in target_modules");
  EXPECT_FALSE(std::filesystem::exists(dir_ / "w"));
}

}  // namespace
