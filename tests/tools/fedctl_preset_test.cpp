// Real-size Llama configs: `fedctl make-model --preset`, sharded checkpoints on disk exactly as
// Hugging Face lays them out, loading them back, and `fedctl tokenize` with a tokenizer.json.
#include <gtest/gtest.h>

#include <cstdlib>
#include <nlohmann/json.hpp>
#include <set>
#include <string>

#include "fedctl_run.h"
#include "model/llama_presets.h"
#include "model/llama_weights.h"
#include "model/safetensors_reader.h"
#include "test_util.h"

namespace {

using model_test::TempDir;
using nlohmann::json;

using fedctl_test::fedctl;
using fedctl_test::Result;

void expect_refusal(const Result& r, const std::string& command, const std::string& needle) {
  EXPECT_EQ(r.status, 2) << r.err;
  EXPECT_EQ(r.err.rfind("fedctl " + command + ": ", 0), 0u) << r.err;
  EXPECT_NE(r.err.find(needle), std::string::npos) << r.err;
}

// The published config.json fields of each checkpoint (meta-llama/Llama-3.2-1B, -3.2-3B and
// -3.1-8B on the Hugging Face hub), written out here independently of llama_presets.cpp.
json published(const std::string& name) {
  json common = {
      {"architectures", {"LlamaForCausalLM"}},
      {"model_type", "llama"},
      {"hidden_act", "silu"},
      {"attention_bias", false},
      {"mlp_bias", false},
      {"vocab_size", 128256},
      {"max_position_embeddings", 131072},
      {"rms_norm_eps", 1e-05},
      {"rope_theta", 500000.0},
      {"bos_token_id", 128000},
      {"eos_token_id", 128001},
      {"torch_dtype", "bfloat16"},
      {"num_key_value_heads", 8},
  };
  json scaling = {{"rope_type", "llama3"},
                  {"low_freq_factor", 1.0},
                  {"high_freq_factor", 4.0},
                  {"original_max_position_embeddings", 8192}};
  if (name == "llama-3.2-1b") {
    common.update({{"hidden_size", 2048},
                   {"intermediate_size", 8192},
                   {"num_hidden_layers", 16},
                   {"num_attention_heads", 32},
                   {"head_dim", 64},
                   {"tie_word_embeddings", true}});
    scaling["factor"] = 32.0;
  } else if (name == "llama-3.2-3b") {
    common.update({{"hidden_size", 3072},
                   {"intermediate_size", 8192},
                   {"num_hidden_layers", 28},
                   {"num_attention_heads", 24},
                   {"head_dim", 128},
                   {"tie_word_embeddings", true}});
    scaling["factor"] = 32.0;
  } else {
    common.update({{"hidden_size", 4096},
                   {"intermediate_size", 14336},
                   {"num_hidden_layers", 32},
                   {"num_attention_heads", 32},
                   {"head_dim", 128},
                   {"tie_word_embeddings", false}});
    scaling["factor"] = 8.0;
  }
  common["rope_scaling"] = scaling;
  return common;
}

// Every field of `want` is in `got` with the same value (numbers compared as numbers).
void expect_fields(const json& got, const json& want) {
  for (const auto& [key, value] : want.items()) {
    ASSERT_TRUE(got.contains(key)) << key;
    if (value.is_object()) {
      expect_fields(got[key], value);
    } else if (value.is_number()) {
      EXPECT_EQ(got[key].get<double>(), value.get<double>()) << key;
    } else {
      EXPECT_EQ(got[key], value) << key;
    }
  }
}

TEST(LlamaPresets, AreThePublishedConfigs) {
  ASSERT_EQ(model::llama_preset_names(),
            (std::vector<std::string>{"llama-3.2-1b", "llama-3.2-3b", "llama-3.1-8b"}));
  const int64_t params[] = {1'235'814'400, 3'212'749'824, 8'030'261'248};  // as published
  int i = 0;
  for (const auto& name : model::llama_preset_names()) {
    const auto c = model::llama_preset(name);
    ASSERT_TRUE(c.has_value());
    expect_fields(model::llama_config_to_json(*c), published(name));
    EXPECT_EQ(c->parameter_count(), params[i++]) << name;
    // The config reads back as written.
    const auto back = model::parse_llama_config(model::llama_config_to_json(*c), name);
    EXPECT_EQ(model::llama_config_to_json(back), model::llama_config_to_json(*c));
  }
  EXPECT_FALSE(model::llama_preset("llama-2-7b").has_value());
}

TEST(FedctlPreset, WritesTheConfigAndACheckpointThatRuns) {
  TempDir dir;
  const auto m = dir / "m";
  const Result made = fedctl(
      "make-model --preset llama-3.2-1b --layers 1 --vocab 512"
      " --seed 4 --out " +
      m.string());
  ASSERT_EQ(made.status, 0) << made.err;
  json want = published("llama-3.2-1b");
  want["num_hidden_layers"] = 1;
  want["vocab_size"] = 512;
  const json config = json::parse(test_support::slurp(m / "config.json"));
  expect_fields(config, want);
  // Under 5GB: one model.safetensors in bf16, as transformers saves it.
  EXPECT_TRUE(std::filesystem::exists(m / "model.safetensors"));
  EXPECT_FALSE(std::filesystem::exists(m / "model.safetensors.index.json"));
  const model::SafetensorsReader file(m / "model.safetensors");
  for (const auto& t : file.tensors()) EXPECT_EQ(t.dtype, model::DType::kBF16) << t.name;
  EXPECT_EQ(file.tensors().size(), 1u + 9u + 1u);  // tied: no lm_head.weight

  const Result info = fedctl("model-info --model " + m.string());
  ASSERT_EQ(info.status, 0) << info.err;
  const json j = json::parse(info.out);
  EXPECT_EQ(j["projections"]["k_proj"]["shape"], json({512, 2048}));
  EXPECT_EQ(j["projections"]["down_proj"]["shape"], json({2048, 8192}));

  const Result fwd = fedctl("forward --model " + m.string() + " --tokens \"1 2 3\"");
  ASSERT_EQ(fwd.status, 0) << fwd.err;
  const json logits = json::parse(fwd.out)["logits"];
  ASSERT_EQ(logits.size(), 3u);
  EXPECT_EQ(logits[2].size(), 512u);
}

TEST(FedctlPreset, ShardsAsHuggingFaceAndLoadsTheShards) {
  TempDir dir;
  const auto m = dir / "m";
  // bf16: embed 2.6 MB, q/o 8.4 MB, k/v 2.1 MB, gate/up/down 33.6 MB, norms 4 KB.
  const Result made = fedctl(
      "make-model --preset llama-3.2-1b --layers 1 --vocab 640"
      " --max-shard-size 10MB --out " +
      m.string());
  ASSERT_EQ(made.status, 0) << made.err;
  EXPECT_FALSE(std::filesystem::exists(m / "model.safetensors"));
  const json index = json::parse(test_support::slurp(m / "model.safetensors.index.json"));
  EXPECT_EQ(index.size(), 2u);
  EXPECT_EQ(index["metadata"].size(), 1u);
  const json& map = index["weight_map"];
  EXPECT_EQ(map.size(), 1u + 9u + 1u);
  std::set<std::string> shards;
  for (const auto& [name, file] : map.items()) shards.insert(file.get<std::string>());
  const size_t n = shards.size();
  // In transformers' state_dict order, with a 10 MB limit: {embed}, {q}, {k, v}, then gate, up
  // and down (each over the limit: a shard of its own, listed before the shard being filled),
  // then {o, input_layernorm, post_attention_layernorm, norm}.
  ASSERT_EQ(n, 7u);
  EXPECT_EQ(map["model.embed_tokens.weight"], "model-00001-of-00007.safetensors");
  EXPECT_EQ(map["model.layers.0.self_attn.v_proj.weight"], "model-00003-of-00007.safetensors");
  EXPECT_EQ(map["model.layers.0.mlp.gate_proj.weight"], "model-00004-of-00007.safetensors");
  EXPECT_EQ(map["model.layers.0.mlp.down_proj.weight"], "model-00006-of-00007.safetensors");
  EXPECT_EQ(map["model.layers.0.self_attn.o_proj.weight"], "model-00007-of-00007.safetensors");
  EXPECT_EQ(map["model.layers.0.input_layernorm.weight"], "model-00007-of-00007.safetensors");
  EXPECT_EQ(map["model.norm.weight"], "model-00007-of-00007.safetensors");
  char expect_last[64];
  std::snprintf(expect_last, sizeof expect_last, "model-%05zu-of-%05zu.safetensors", n, n);
  EXPECT_EQ(*shards.rbegin(), expect_last);
  EXPECT_EQ(*shards.begin(), "model-00001-of-" + std::string(expect_last).substr(15));
  uint64_t total = 0;
  size_t tensors = 0;
  for (const std::string& s : shards) {
    ASSERT_TRUE(std::filesystem::exists(m / s)) << s;
    const model::SafetensorsReader r(m / s);
    for (const auto& t : r.tensors()) {
      EXPECT_EQ(map[t.name], s) << t.name;
      total += t.byte_size();
      ++tensors;
    }
  }
  EXPECT_EQ(tensors, map.size());
  EXPECT_EQ(index["metadata"]["total_size"].get<uint64_t>(), total);
  // 2 bytes per bf16 parameter.
  const auto c = model::load_llama_config(m);
  EXPECT_EQ(total, 2u * static_cast<uint64_t>(c.parameter_count()));
  const auto w = model::load_llama_weights(m);
  EXPECT_EQ(w.layers.size(), 1u);
  EXPECT_EQ(w.layers[0].down_proj.cols(), 8192);

  const Result fwd = fedctl("forward --model " + m.string() + " --tokens \"5 6\"");
  ASSERT_EQ(fwd.status, 0) << fwd.err;
  EXPECT_EQ(json::parse(fwd.out)["logits"].size(), 2u);

  // An index naming a shard that is not there: a clear error naming the file.
  std::filesystem::remove(m / *shards.rbegin());
  expect_refusal(fedctl("model-info --model " + m.string()), "model-info",
                 std::string(expect_last));
  expect_refusal(fedctl("forward --model " + m.string() + " --tokens 1"), "forward",
                 std::string(expect_last));
}

TEST(FedctlPreset, RefusesUnknownPresetsAndChangesToOne) {
  TempDir dir;
  const std::string out = " --out " + (dir / "m").string();
  const Result r = fedctl("make-model --preset llama-2-7b" + out);
  expect_refusal(r, "make-model", "unknown preset 'llama-2-7b'");
  for (const char* name : {"llama-3.2-1b", "llama-3.2-3b", "llama-3.1-8b"}) {
    EXPECT_NE(r.err.find(name), std::string::npos) << r.err;
  }
  expect_refusal(fedctl("make-model --preset llama-3.2-1b --hidden 64" + out), "make-model",
                 "--hidden cannot change a --preset");
  expect_refusal(fedctl("make-model --preset llama-3.2-1b --layers 0" + out), "make-model",
                 "--layers must be positive");
  expect_refusal(fedctl("make-model --preset llama-3.2-1b --max-shard-size 5TB" + out),
                 "make-model", "unknown unit");
  expect_refusal(fedctl("make-model --layers 2" + out), "make-model",
                 "--hidden is required (or give --preset)");
  EXPECT_FALSE(std::filesystem::exists(dir / "m" / "config.json"));
}

const std::filesystem::path kTokenizerFixture =
    std::filesystem::path(FEDLORA_REFERENCE_DIR) / "bpe_tokenizer";

TEST(FedctlTokenize, EncodesAndDecodesWithTokenizerJson) {
  TempDir dir;
  const auto m = dir / "m";
  ASSERT_EQ(
      fedctl("make-model --preset llama-3.2-1b --layers 1 --vocab 700 --out " + m.string()).status,
      0);
  std::filesystem::copy_file(kTokenizerFixture / "tokenizer.json", m / "tokenizer.json");
  const json expected = json::parse(test_support::slurp(kTokenizerFixture / "expected.json"));
  const json& c = expected["cases"][0];  // clinical text
  const std::string text = c["text"];

  const Result enc = fedctl("tokenize --model " + m.string() + " --text '" + text + "'");
  ASSERT_EQ(enc.status, 0) << enc.err;
  const json e = json::parse(enc.out);
  EXPECT_EQ(e["tokenizer"], "tokenizer.json");
  EXPECT_EQ(e["ids"], c["ids"]);
  EXPECT_EQ(e["count"], c["ids"].size());

  const Result bos =
      fedctl("tokenize --model " + m.string() + " --bos --eos --text '" + text + "'");
  ASSERT_EQ(bos.status, 0) << bos.err;
  const json b = json::parse(bos.out)["ids"];
  ASSERT_EQ(b.size(), c["ids"].size() + 2);
  EXPECT_EQ(b.front(), 656 + 2);  // <|begin_of_text|> follows the 656 + 2 vocabulary tokens
  EXPECT_EQ(b.back(), 656 + 3);   // <|end_of_text|>
  EXPECT_EQ(json(std::vector<json>(b.begin() + 1, b.end() - 1)), c["ids"]);

  std::string ids;
  for (const json& id : c["ids"]) ids += std::to_string(id.get<int>()) + ",";
  const Result dec = fedctl("tokenize --model " + m.string() + " --decode " + ids);
  ASSERT_EQ(dec.status, 0) << dec.err;
  EXPECT_EQ(json::parse(dec.out)["text"], c["decoded"]);

  const Result info = fedctl("model-info --model " + m.string());
  ASSERT_EQ(info.status, 0) << info.err;
  EXPECT_EQ(json::parse(info.out)["tokenizer"], "tokenizer.json");

  // forward --text: BOS, then the tokenizer.json ids.
  const Result fwd = fedctl("forward --model " + m.string() + " --text '" + text + "'");
  ASSERT_EQ(fwd.status, 0) << fwd.err;
  json tokens = json::array({656 + 2});
  for (const json& id : c["ids"]) tokens.push_back(id);
  EXPECT_EQ(json::parse(fwd.out)["tokens"], tokens);
}

TEST(FedctlTokenize, RefusesBadInput) {
  TempDir dir;
  const auto m = dir / "m";
  std::filesystem::create_directories(m);
  std::filesystem::copy_file(kTokenizerFixture / "tokenizer.json", m / "tokenizer.json");
  // No config.json: the tokenizer alone.
  const Result ok = fedctl("tokenize --model " + m.string() + " --text Patient");
  ASSERT_EQ(ok.status, 0) << ok.err;
  EXPECT_EQ(json::parse(ok.out)["ids"], json({344}));
  expect_refusal(fedctl("tokenize --model " + m.string()), "tokenize",
                 "exactly one of --text and --decode");
  expect_refusal(fedctl("tokenize --model " + m.string() + " --decode '1 x'"), "tokenize",
                 "'x' is not an id");
  expect_refusal(fedctl("tokenize --model " + m.string() + " --decode 99999"), "tokenize",
                 "outside the vocabulary");
  test_support::write_file(m / "tokenizer.json", "{\"model\": {\"type\": \"WordPiece\"}}");
  expect_refusal(fedctl("tokenize --model " + m.string() + " --text hi"), "tokenize",
                 "tokenizer.json: model type WordPiece is not supported (only BPE)");
}

}  // namespace
