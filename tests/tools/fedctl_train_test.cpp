// Runs the built `fedctl train`, `fedctl eval` and `fedctl forward --adapter`: the encrypted
// backend trains the int8 backend's adapter bit for bit, the PEFT files, the JSON log, eval and
// forward reproducing the trainer's own figures, and one-line refusals.
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "fedctl_run.h"
#include "model/byte_tokenizer.h"
#include "model/dataset.h"
#include "model/evaluation.h"
#include "model/float_backend.h"
#include "model/llama_model.h"
#include "model/llama_weights.h"
#include "model/lora_peft.h"
#include "model/peft_adapter.h"
#include "model/safetensors_reader.h"
#include "test_util.h"

namespace {

using nlohmann::json;

using fedctl_test::fedctl;
using fedctl_test::Result;

// The suite's model, data and first training runs, made once.
class FedctlTrain : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new test_support::TempDir;
    fedctl_test::make_tiny_model_and_data(dir_->path());
  }
  static void TearDownTestSuite() { delete dir_; }

  static std::string path(const std::string& name) { return (dir_->path() / name).string(); }

  // A short run on the tiny model: seq-len 24, batch 4.
  static Result train(const std::string& args) {
    return fedctl("train --model " + path("m") + " --data " + path("data/site0.jsonl") +
                  " --seq-len 24 --batch 4 --seed 3 " + args);
  }

  static std::vector<json> read_log(const std::string& file) {
    std::vector<json> lines;
    std::ifstream in(file);
    for (std::string line; std::getline(in, line);) lines.push_back(json::parse(line));
    return lines;
  }

  static test_support::TempDir* dir_;
};

test_support::TempDir* FedctlTrain::dir_ = nullptr;

void expect_refusal(const Result& r, const std::string& command, const std::string& needle) {
  EXPECT_EQ(r.status, 2) << r.err;
  EXPECT_EQ(r.err.rfind("fedctl " + command + ": ", 0), 0u) << r.err;
  EXPECT_NE(r.err.find(needle), std::string::npos) << r.err;
  ASSERT_FALSE(r.err.empty());
  EXPECT_EQ(r.err.find('\n'), r.err.size() - 1) << r.err;
  EXPECT_TRUE(r.out.empty()) << r.out;
}

TEST_F(FedctlTrain, EncryptedTrainsTheInt8AdapterBitForBit) {
  const std::string args = "--steps 20 --lr 1e-2 --targets q,k,v,o,gate,up,down --lora-rank 4";
  const Result i8 =
      train(args + " --backend int8 --out " + path("a_int8") + " --log-json " + path("int8.jsonl"));
  ASSERT_EQ(i8.status, 0) << i8.err;
  const Result enc = train(args + " --backend encrypted --out " + path("a_enc") + " --log-json " +
                           path("enc.jsonl"));
  ASSERT_EQ(enc.status, 0) << enc.err;
  const Result fl = train(args + " --backend float --out " + path("a_float"));
  ASSERT_EQ(fl.status, 0) << fl.err;

  const std::string weights = model::kPeftWeightsFile;
  const std::string a_int8 = test_support::slurp(path("a_int8/" + weights));
  ASSERT_GT(a_int8.size(), 1000u);
  EXPECT_EQ(test_support::slurp(path("a_enc/" + weights)), a_int8);
  EXPECT_EQ(test_support::slurp(path("a_enc/adapter_config.json")),
            test_support::slurp(path("a_int8/adapter_config.json")));
  // Every logged train loss agrees exactly too.
  const auto log_int8 = read_log(path("int8.jsonl"));
  const auto log_enc = read_log(path("enc.jsonl"));
  ASSERT_EQ(log_int8.size(), 20u);
  for (size_t i = 0; i < log_int8.size(); ++i) {
    EXPECT_EQ(log_int8[i]["train_loss"].get<double>(), log_enc[i]["train_loss"].get<double>());
  }
  // The adapter trained: B moved away from zero; and float products train another adapter.
  const model::PeftAdapter adapter = model::read_peft_adapter(path("a_int8"));
  float max_b = 0;
  for (const auto& [site, f] : adapter.weights) {
    for (const float b : f.b) max_b = std::max(max_b, std::abs(b));
  }
  EXPECT_GT(max_b, 0.01f);
  EXPECT_NE(test_support::slurp(path("a_float/" + weights)), a_int8);
  EXPECT_LT(log_int8.back()["train_loss"].get<double>(), log_int8.front()["train_loss"]);
}

TEST_F(FedctlTrain, RecomputedActivationsTrainTheSameAdapter) {
  // The encrypted backend with activations recomputed in the backward pass: the adapter of the
  // int8 backend that keeps every activation, byte for byte.
  const std::string args = "--steps 4 --targets q,k,v,o,gate,up,down --lora-rank 4";
  const Result keep = train(args + " --backend int8 --out " + path("a_keep"));
  ASSERT_EQ(keep.status, 0) << keep.err;
  const Result again =
      train(args + " --backend encrypted --recompute-activations --out " + path("a_recompute"));
  ASSERT_EQ(again.status, 0) << again.err;
  const std::string weights = model::kPeftWeightsFile;
  const std::string want = test_support::slurp(path("a_keep/" + weights));
  ASSERT_GT(want.size(), 1000u);
  EXPECT_EQ(test_support::slurp(path("a_recompute/" + weights)), want);
}

TEST_F(FedctlTrain, WritesPeftFilesTheLogAndAReproducibleAdapter) {
  const Result r = train("--steps 10 --eval " + path("data/site0.heldout.jsonl") +
                         " --eval-every 5 --lora-rank 4 --lora-alpha 8 --targets q,v,down"
                         " --schedule cosine --warmup 2 --out " +
                         path("a") + " --log-json " + path("log.jsonl"));
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.err.find("step 10/10"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("tok/s"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("ETA"), std::string::npos) << r.err;
  const json summary = json::parse(r.out);
  EXPECT_EQ(summary["steps"], 10);
  EXPECT_EQ(summary["adapter"], path("a"));

  // The log: one object per line, steps 0 (before training) to 10, held-out loss on 0, 5, 10.
  const auto log = read_log(path("log.jsonl"));
  ASSERT_EQ(log.size(), 11u);
  for (size_t i = 0; i < log.size(); ++i) {
    EXPECT_EQ(log[i]["step"], i);
    EXPECT_TRUE(log[i].contains("train_loss"));
    EXPECT_EQ(log[i].contains("heldout_loss"), i % 5 == 0) << i;
    if (i > 0) {
      EXPECT_GT(log[i]["train_loss"].get<double>(), 0);
    }
  }
  EXPECT_TRUE(log[0]["train_loss"].is_null());
  EXPECT_EQ(log[1]["lr"], 0.0);  // warmup starts at 0
  EXPECT_EQ(summary["heldout_loss"], log[10]["heldout_loss"]);

  // adapter_config.json and the tensors: names, shapes, dtype.
  const json config = json::parse(test_support::slurp(path("a/adapter_config.json")));
  EXPECT_EQ(config["peft_type"], "LORA");
  EXPECT_EQ(config["r"], 4);
  EXPECT_EQ(config["lora_alpha"], 8);
  EXPECT_EQ(config["target_modules"], json({"q_proj", "v_proj", "down_proj"}));
  EXPECT_EQ(config["base_model_name_or_path"], path("m"));
  const model::SafetensorsReader file(path("a/adapter_model.safetensors"));
  EXPECT_EQ(file.tensors().size(), 2u * 3 * 2);
  struct Expected {
    std::string name;
    std::vector<int64_t> shape;
  };
  for (int layer = 0; layer < 2; ++layer) {
    const std::string p = "base_model.model.model.layers." + std::to_string(layer) + ".";
    for (const Expected& e :
         std::vector<Expected>{{p + "self_attn.q_proj.lora_A.weight", {4, 64}},
                               {p + "self_attn.q_proj.lora_B.weight", {64, 4}},
                               {p + "self_attn.v_proj.lora_A.weight", {4, 64}},
                               {p + "self_attn.v_proj.lora_B.weight", {32, 4}},  // 2 kv heads of 16
                               {p + "mlp.down_proj.lora_A.weight", {4, 128}},
                               {p + "mlp.down_proj.lora_B.weight", {64, 4}}}) {
      const model::TensorInfo* info = file.find(e.name);
      ASSERT_NE(info, nullptr) << e.name;
      EXPECT_EQ(info->dtype, model::DType::kF32) << e.name;
      EXPECT_EQ(info->shape, e.shape) << e.name;
    }
  }

  // fedctl eval reproduces the trainer's evaluations: the final held-out loss with the adapter,
  // the initial one (B = 0) without.
  const std::string eval =
      "eval --model " + path("m") + " --data " + path("data/site0.heldout.jsonl") + " --seq-len 24";
  const Result with = fedctl(eval + " --adapter " + path("a"));
  ASSERT_EQ(with.status, 0) << with.err;
  const json e = json::parse(with.out);
  EXPECT_NEAR(e["loss"].get<double>(), log[10]["heldout_loss"].get<double>(), 1e-9);
  EXPECT_NEAR(e["perplexity"].get<double>(), log[10]["heldout_perplexity"].get<double>(), 1e-6);
  EXPECT_GT(e["tokens"].get<int64_t>(), 0);
  const Result without = fedctl(eval);
  ASSERT_EQ(without.status, 0) << without.err;
  EXPECT_NEAR(json::parse(without.out)["loss"].get<double>(), log[0]["heldout_loss"].get<double>(),
              1e-9);
  EXPECT_LT(e["loss"].get<double>(), json::parse(without.out)["loss"].get<double>());

  // fedctl forward --adapter prints the adapted model's logits exactly.
  const Result fwd =
      fedctl("forward --model " + path("m") + " --adapter " + path("a") + " --tokens '1 40 50 60'");
  ASSERT_EQ(fwd.status, 0) << fwd.err;
  const json logits = json::parse(fwd.out)["logits"];
  auto w = std::make_shared<const model::LlamaWeights>(model::load_llama_weights(path("m")));
  model::LlamaModel llama(w, std::make_unique<model::FloatBackend>(w));
  const model::LoraParams lora =
      model::peft_to_lora(model::read_peft_adapter(path("a"), w->config), w->config);
  const model::TokenBatch batch({{1, 40, 50, 60}});
  const model::Matrix adapted = llama.forward(batch, nullptr, &lora);
  const model::Matrix base = llama.forward(batch);
  ASSERT_EQ(logits.size(), 4u);
  float max_change = 0;
  for (int t = 0; t < 4; ++t) {
    for (int v = 0; v < 300; ++v) {
      ASSERT_EQ(logits[t][v].get<float>(), adapted(t, v));
      max_change = std::max(max_change, std::abs(adapted(t, v) - base(t, v)));
    }
  }
  EXPECT_GT(max_change, 1e-3f);  // the adapter changes the logits
}

TEST_F(FedctlTrain, EvalScoresMultipleChoiceQuestions) {
  const Result r =
      fedctl("eval --model " + path("m") + " --mcq " + path("data/mcq.jsonl") + " --backend int8");
  ASSERT_EQ(r.status, 0) << r.err;
  const json j = json::parse(r.out);
  EXPECT_FALSE(j.contains("loss"));
  EXPECT_EQ(j["mcq_questions"], 6);

  // The same accuracy as the library computes.
  auto w = std::make_shared<const model::LlamaWeights>(model::load_llama_weights(path("m")));
  model::LlamaModel llama(w, std::make_unique<model::FloatBackend>(w));
  const auto questions = model::read_mcq_jsonl(path("data/mcq.jsonl"));
  const model::McqResult m =
      model::evaluate_mcq(llama, questions, model::ByteTokenizer(300), nullptr);
  const Result f = fedctl("eval --model " + path("m") + " --mcq " + path("data/mcq.jsonl"));
  ASSERT_EQ(f.status, 0) << f.err;
  EXPECT_EQ(json::parse(f.out)["mcq_correct"], m.correct);
  EXPECT_EQ(json::parse(f.out)["mcq_accuracy"], m.accuracy);
}

TEST_F(FedctlTrain, RefusesBadInputWithOneLine) {
  test_support::write_file(path("bad.jsonl"), "{\"text\": \"ok\"}\nnot json\n");
  test_support::write_file(path("empty.jsonl"), "\n");
  test_support::write_file(path("notext.jsonl"), "{\"note\": \"x\"}\n");
  // A valid command line but for `data` and `extra`.
  const auto run = [&](const std::string& data, const std::string& extra,
                       const std::string& steps = " --steps 2",
                       const std::string& seq = " --seq-len 24") {
    return fedctl("train --model " + path("m") + " --data " + data + steps + seq + " " + extra);
  };
  const std::string data = path("data/site0.jsonl");
  expect_refusal(run(path("missing.jsonl"), ""), "train", "missing.jsonl");
  expect_refusal(run(path("bad.jsonl"), ""), "train", "bad.jsonl:2: not valid JSON");
  expect_refusal(run(path("empty.jsonl"), ""), "train", "no records");
  expect_refusal(run(path("notext.jsonl"), ""), "train", "missing \"text\"");
  expect_refusal(run(data, "--eval " + path("empty.jsonl")), "train", "no records");
  expect_refusal(run(data, "", " --steps 2", ""), "train",  // the default 128
                 "--seq-len 128 exceeds the model's max_position_embeddings 64");
  expect_refusal(run(data, "--seq-len 65", " --steps 2", ""), "train",
                 "--seq-len 65 exceeds the model's max_position_embeddings 64");
  expect_refusal(run(data, "--seq-len 1", " --steps 2", ""), "train",
                 "--seq-len must be at least 2");
  expect_refusal(run(data, "--bogus 1"), "train", "bogus");
  expect_refusal(run(data, "--backend fp16"), "train", "unknown backend 'fp16'");
  expect_refusal(run(data, "--targets q,x"), "train", "unknown projection 'x'");
  expect_refusal(run(data, "--schedule step"), "train", "constant, linear or cosine");
  expect_refusal(run(data, "", " --steps 0"), "train", "--steps must be at least 1");
  expect_refusal(run(data, "", " --steps x"), "train", "steps");
  expect_refusal(run(data, "", ""), "train", "steps");
  expect_refusal(run(data, "--lora-rank 0"), "train", "--lora-rank");
  expect_refusal(run(data, "--lr -1"), "train", "--lr");
  expect_refusal(run(data, "--eval-every 5"), "train", "--eval-every needs a held-out set");
  expect_refusal(run(data, "--batch 30 --grad-accum 2"), "train", "the training set has 40");
  expect_refusal(fedctl("train --model " + path("m") + " --steps 2"), "train", "data");
  expect_refusal(fedctl("train --model " + path("nomodel") + " --steps 2 --data " + data), "train",
                 "nomodel");

  const std::string eval = "eval --model " + path("m");
  expect_refusal(fedctl(eval), "eval", "give --data, --mcq or both");
  expect_refusal(fedctl(eval + " --seq-len 24 --data " + path("empty.jsonl")), "eval",
                 "no records");
  expect_refusal(fedctl(eval + " --seq-len 24 --data " + data + " --adapter " + path("noadapter")),
                 "eval", "adapter_config.json");
  expect_refusal(fedctl(eval + " --data " + data), "eval", "max_position_embeddings 64");
  expect_refusal(fedctl(eval + " --mcq " + data), "eval", "question");
  expect_refusal(fedctl(eval + " --seq-len 24 --data " + data + " --batch 0"), "eval", "--batch");
  expect_refusal(
      fedctl("forward --model " + path("m") + " --tokens 1 --adapter " + path("noadapter")),
      "forward", "adapter_config.json");
}

TEST_F(FedctlTrain, HelpListsTheCommandsAndDefaults) {
  const Result top = fedctl("--help");
  EXPECT_NE(top.out.find("train"), std::string::npos);
  EXPECT_NE(top.out.find("eval"), std::string::npos);
  const Result help = fedctl("train --help");
  EXPECT_EQ(help.status, 0);
  for (const char* flag : {"--grad-accum", "--freeze-a", "--log-json", "--eval-every", "--warmup",
                           "--schedule", "--targets", "--weight-decay"}) {
    EXPECT_NE(help.out.find(flag), std::string::npos) << flag;
  }
  EXPECT_EQ(fedctl("eval --help").status, 0);
}

}  // namespace
