#include "model/llama_config.h"

#include <gtest/gtest.h>

#include "model/error.h"
#include "test_util.h"

namespace {

using nlohmann::json;

json llama2_7b() {
  return json::parse(R"({
    "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_act": "silu",
    "hidden_size": 4096, "intermediate_size": 11008, "num_hidden_layers": 32,
    "num_attention_heads": 32, "num_key_value_heads": 32, "vocab_size": 32000,
    "max_position_embeddings": 4096, "rms_norm_eps": 1e-05, "torch_dtype": "float16",
    "tie_word_embeddings": false, "rope_scaling": null, "bos_token_id": 1, "eos_token_id": 2
  })");
}

void expect_error(const json& j, const std::string& needle) {
  try {
    model::parse_llama_config(j, "cfg.json");
    ADD_FAILURE() << "parsed; expected '" << needle << "'";
  } catch (const model::ModelError& e) {
    const std::string what = e.what();
    EXPECT_EQ(what.rfind("cfg.json: ", 0), 0u) << what;
    EXPECT_NE(what.find(needle), std::string::npos) << what;
  }
}

TEST(LlamaConfig, ParsesLlama2WithDefaults) {
  const auto c = model::parse_llama_config(llama2_7b(), "cfg.json");
  EXPECT_EQ(c.hidden_size, 4096);
  EXPECT_EQ(c.head_dim, 128);
  EXPECT_EQ(c.num_key_value_heads, 32);
  EXPECT_EQ(c.rope_theta, 10000.0);
  EXPECT_DOUBLE_EQ(c.rms_norm_eps, 1e-5);
  EXPECT_FALSE(c.tie_word_embeddings);
  EXPECT_FALSE(c.rope_scaling.has_value());
  EXPECT_EQ(c.torch_dtype, "float16");
  EXPECT_EQ(c.parameter_count(), 6738415616);  // Llama-2-7b's published parameter count
}

TEST(LlamaConfig, DefaultsForOptionalFields) {
  json j = llama2_7b();
  j.erase("num_key_value_heads");
  j.erase("max_position_embeddings");
  j.erase("rms_norm_eps");
  j["architectures"] = nullptr;
  const auto c = model::parse_llama_config(j, "cfg.json");
  EXPECT_EQ(c.num_key_value_heads, 32);
  EXPECT_EQ(c.max_position_embeddings, 2048);
  EXPECT_DOUBLE_EQ(c.rms_norm_eps, 1e-6);
}

TEST(LlamaConfig, ParsesLlama32WithGqaTiedAndRopeScaling) {
  json j = llama2_7b();
  j["hidden_size"] = 2048;
  j["intermediate_size"] = 8192;
  j["num_hidden_layers"] = 16;
  j["num_key_value_heads"] = 8;
  j["head_dim"] = 64;
  j["vocab_size"] = 128256;
  j["rope_theta"] = 500000.0;
  j["tie_word_embeddings"] = true;
  j["rope_scaling"] = {{"rope_type", "llama3"},
                       {"factor", 32.0},
                       {"low_freq_factor", 1.0},
                       {"high_freq_factor", 4.0},
                       {"original_max_position_embeddings", 8192}};
  const auto c = model::parse_llama_config(j, "cfg.json");
  EXPECT_EQ(c.group_size(), 4);
  EXPECT_EQ(c.kv_dim(), 512);
  EXPECT_EQ(c.rope_theta, 500000.0);
  ASSERT_TRUE(c.rope_scaling.has_value());
  EXPECT_EQ(c.rope_scaling->rope_type, "llama3");
  EXPECT_EQ(c.rope_scaling->original_max_position_embeddings, 8192);
  EXPECT_EQ(c.parameter_count(), 1235814400);  // Llama-3.2-1B
  // The JSON form parses back to the same config.
  const auto again = model::parse_llama_config(model::llama_config_to_json(c), "again");
  EXPECT_EQ(again.parameter_count(), c.parameter_count());
  EXPECT_EQ(again.rope_scaling->factor, 32.0);
  EXPECT_TRUE(again.tie_word_embeddings);
  EXPECT_EQ(again.head_dim, 64);
}

TEST(LlamaConfig, ExplicitHeadDimNeedNotDivideHidden) {
  json j = llama2_7b();
  j["hidden_size"] = 100;
  j["num_attention_heads"] = 8;
  j["num_key_value_heads"] = 4;
  j["head_dim"] = 16;
  const auto c = model::parse_llama_config(j, "cfg.json");
  EXPECT_EQ(c.q_dim(), 128);
}

TEST(LlamaConfig, Errors) {
  auto with = [](const char* key, json value) {
    json j = llama2_7b();
    j[key] = std::move(value);
    return j;
  };
  auto without = [](const char* key) {
    json j = llama2_7b();
    j.erase(key);
    return j;
  };
  expect_error(json::array(), "not a JSON object");
  expect_error(without("hidden_size"), "missing \"hidden_size\"");
  expect_error(without("vocab_size"), "missing \"vocab_size\"");
  expect_error(without("model_type"), "missing \"model_type\"");
  expect_error(with("model_type", "mistral"), "model_type \"mistral\" is not supported");
  expect_error(with("architectures", {"GPT2LMHeadModel"}), "lack \"LlamaForCausalLM\"");
  expect_error(with("hidden_size", "4096"), "\"hidden_size\" is not an integer");
  expect_error(with("hidden_size", 4096.5), "\"hidden_size\" is not an integer");
  expect_error(with("intermediate_size", -1), "intermediate_size must be positive");
  expect_error(with("num_hidden_layers", 0), "num_hidden_layers must be positive");
  expect_error(with("num_attention_heads", 0), "num_attention_heads must be positive");
  expect_error(with("num_attention_heads", 31), "31 does not divide hidden_size 4096");
  expect_error(with("num_key_value_heads", 5), "num_key_value_heads 5 does not divide");
  expect_error(with("vocab_size", int64_t{1} << 40), "vocab_size 1099511627776 is absurd");
  expect_error(with("rms_norm_eps", 0), "rms_norm_eps must be a positive");
  expect_error(with("rope_theta", "big"), "\"rope_theta\" is not a number");
  expect_error(with("rope_theta", -1.0), "rope_theta must be a positive");
  expect_error(with("tie_word_embeddings", 1), "\"tie_word_embeddings\" is not a boolean");
  expect_error(with("hidden_act", "gelu"), "hidden_act \"gelu\" is not supported");
  expect_error(with("attention_bias", true), "attention_bias is not supported");
  expect_error(with("head_dim", 3), "head_dim 3 must be even");
  expect_error(with("rope_scaling", {{"rope_type", "yarn"}, {"factor", 4.0}}),
               "rope_scaling type \"yarn\" is not supported");
  expect_error(with("rope_scaling", {{"rope_type", "llama3"}, {"factor", 8.0}}),
               "missing \"original_max_position_embeddings\"");
}

TEST(LlamaConfig, LoadFromDirectory) {
  model_test::TempDir dir;
  EXPECT_THROW(model::load_llama_config(dir.path()), model::ModelError);
  test_support::write_file(dir / "config.json", "{ not json");
  try {
    model::load_llama_config(dir.path());
    ADD_FAILURE();
  } catch (const model::ModelError& e) {
    EXPECT_NE(std::string(e.what()).find("config.json: not valid JSON"), std::string::npos);
  }
  test_support::write_file(dir / "config.json", llama2_7b().dump());
  EXPECT_EQ(model::load_llama_config(dir.path()).num_hidden_layers, 32);
}

TEST(LlamaConfig, ValidateCatchesHandBuiltConfigs) {
  auto c = model_test::tiny_llama_config();
  EXPECT_NO_THROW(model::validate_llama_config(c, "tiny"));
  c.num_key_value_heads = 3;
  EXPECT_THROW(model::validate_llama_config(c, "tiny"), model::ModelError);
}

}  // namespace
