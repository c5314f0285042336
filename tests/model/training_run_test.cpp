// One training run (model/training_run.h): run_training equals the hand-written loop over a
// LoraTrainer with the same DP-SGD streams bit for bit, accounts epsilon as the RDP accountant
// does, starts from a given adapter, and calls its hooks in order.
#include "model/training_run.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <memory>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "model/float_backend.h"
#include "model/llama_model.h"
#include "model/llama_weights.h"
#include "model/random_model.h"
#include "privacy/accountant.h"

namespace {

model::LlamaConfig tiny_config() {
  model::LlamaConfig c;
  c.hidden_size = 32;
  c.intermediate_size = 64;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;
  c.head_dim = 8;
  c.vocab_size = 100;
  c.max_position_embeddings = 32;
  c.rms_norm_eps = 1e-5;
  return c;
}

model::TextDataset random_examples(int64_t count, int64_t length, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int32_t> token(3, 99);
  std::vector<std::vector<int32_t>> examples;
  for (int64_t i = 0; i < count; ++i) {
    std::vector<int32_t> e(static_cast<size_t>(length));
    for (auto& t : e) t = token(rng);
    examples.push_back(std::move(e));
  }
  return model::TextDataset(std::move(examples));
}

std::vector<float> flatten(const model::LoraParams& p) {
  std::vector<float> out;
  for (const model::ProjectionId id : p.ids()) {
    const auto& pair = p.at(id);
    out.insert(out.end(), pair.a.data(), pair.a.data() + pair.a.size());
    out.insert(out.end(), pair.b.data(), pair.b.data() + pair.b.size());
  }
  return out;
}

// Records every hook as one string.
class Recorder : public model::TrainingObserver {
 public:
  void on_step(const model::TrainingStepProgress& p) override {
    calls.push_back("step " + std::to_string(p.report.step));
    epsilons.push_back(p.epsilon);
  }
  void on_evaluation(int64_t step, const model::EvalResult&) override {
    calls.push_back("eval " + std::to_string(step));
  }
  void on_step_end(int64_t step) override { calls.push_back("end " + std::to_string(step)); }

  std::vector<std::string> calls;
  std::vector<double> epsilons;
};

class TrainingRun : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    const auto path = std::filesystem::path(::testing::TempDir()) /
                      ("fedlora_training_run_model_" + std::to_string(::getpid()));
    model::write_random_llama(path, tiny_config(), {.seed = 5});
    weights_ = new std::shared_ptr<const model::LlamaWeights>(
        std::make_shared<const model::LlamaWeights>(model::load_llama_weights(path)));
    std::filesystem::remove_all(path);
  }
  static void TearDownTestSuite() { delete weights_; }

  static std::unique_ptr<model::LlamaModel> float_model() {
    return std::make_unique<model::LlamaModel>(*weights_,
                                               std::make_unique<model::FloatBackend>(*weights_));
  }
  static model::TrainingOptions options() {
    model::TrainingOptions o;
    o.lora.rank = 2;
    o.lora.alpha = 4;
    o.adamw.lr = 1e-2;
    o.steps = 4;
    o.batch_size = 4;
    o.seed = 3;
    return o;
  }

  static std::shared_ptr<const model::LlamaWeights>* weights_;
};

std::shared_ptr<const model::LlamaWeights>* TrainingRun::weights_ = nullptr;

TEST_F(TrainingRun, SeededDpRunEqualsTheHandWrittenLoopAndAccountsEpsilon) {
  const model::TextDataset train = random_examples(16, 8, 1);
  privacy::Seed seed{};
  seed[3] = 7;
  const double q = 0.25, sigma = 1.0, clip = 1.0, delta = 1e-5;

  auto reference_model = float_model();
  model::LoraTrainer trainer(*reference_model, train, options());
  model::DpSgd dp({.sigma = sigma, .clip = clip, .delta = delta, .sample_rate = q, .seed = &seed},
                  train.size());
  dp.attach(trainer);
  std::vector<double> losses;
  for (int s = 0; s < 4; ++s) losses.push_back(trainer.step().loss);

  auto llama = float_model();
  model::TrainingRunConfig config;
  config.options = options();
  config.dp = model::DpSgdSettings{
      .sigma = sigma, .clip = clip, .delta = delta, .sample_rate = q, .seed = &seed};
  Recorder recorder;
  const model::TrainingRunResult r = model::run_training(*llama, train, config, &recorder);

  EXPECT_EQ(flatten(r.adapter), flatten(trainer.adapter()));
  ASSERT_EQ(r.steps.size(), 4u);
  for (size_t i = 0; i < losses.size(); ++i) {
    if (std::isnan(losses[i])) {
      EXPECT_TRUE(std::isnan(r.steps[i].loss));
    } else {
      EXPECT_EQ(r.steps[i].loss, losses[i]);
    }
  }
  privacy::RdpAccountant accountant;
  accountant.add({.q = q, .sigma = sigma, .steps = 4});
  ASSERT_TRUE(r.dp.has_value());
  EXPECT_EQ(r.dp->steps, 4);
  EXPECT_NEAR(r.dp->epsilon, accountant.spent(delta).epsilon, 1e-9);
  ASSERT_EQ(recorder.epsilons.size(), 4u);
  EXPECT_LT(recorder.epsilons[0], recorder.epsilons[3]);
  EXPECT_EQ(r.trainable_parameters, trainer.adapter().parameter_count());
  EXPECT_FALSE(r.heldout.has_value());
}

TEST_F(TrainingRun, WithoutAccountingEpsilonIsNaNAndNothingIsReported) {
  const model::TextDataset train = random_examples(16, 8, 2);
  privacy::Seed seed{};
  auto llama = float_model();
  model::TrainingRunConfig config;
  config.options = options();
  config.dp = model::DpSgdSettings{.sigma = 1, .clip = 1, .sample_rate = 0.5, .seed = &seed};
  Recorder recorder;
  const model::TrainingRunResult r = model::run_training(*llama, train, config, &recorder);
  EXPECT_FALSE(r.dp.has_value());
  for (const double e : recorder.epsilons) EXPECT_TRUE(std::isnan(e));
}

TEST_F(TrainingRun, StartsFromTheGivenAdapterAndEvaluatesOnSchedule) {
  const model::TextDataset train = random_examples(16, 8, 3);
  const model::TextDataset heldout = random_examples(4, 8, 4);
  auto llama = float_model();
  model::LoraTrainer seeded(*llama, train, options());
  model::LoraParams start = seeded.adapter();
  start *= 2.0f;  // not the trainer's own initialisation

  model::TrainingOptions o = options();
  o.adamw.lr = 0;  // the adapter stays where it started
  model::TrainingRunConfig config;
  config.options = o;
  config.initial_adapter = &start;
  config.heldout = &heldout;
  config.eval_batch = 2;
  config.eval_every = 3;
  config.evaluate_initial = true;
  Recorder recorder;
  const model::TrainingRunResult r = model::run_training(*llama, train, config, &recorder);

  EXPECT_EQ(flatten(r.adapter), flatten(start));
  const std::vector<std::string> expected = {"eval 0", "end 0",  "step 1", "end 1",
                                             "step 2", "end 2",  "step 3", "eval 3",
                                             "end 3",  "step 4", "eval 4", "end 4"};
  EXPECT_EQ(recorder.calls, expected);
  ASSERT_TRUE(r.initial_heldout.has_value());
  ASSERT_TRUE(r.heldout.has_value());
  const model::EvalResult direct = model::evaluate_loss(*llama, heldout, &start, 2);
  EXPECT_EQ(r.heldout->loss, direct.loss);
  EXPECT_EQ(r.initial_heldout->loss, direct.loss);
}

TEST(TrainingRunResult, MeanFiniteLossSkipsEmptyBatches) {
  model::TrainingRunResult r;
  EXPECT_TRUE(std::isnan(r.mean_finite_loss()));
  r.steps.resize(3);
  r.steps[0].loss = 1.0;
  r.steps[1].loss = std::nan("");
  r.steps[2].loss = 3.0;
  EXPECT_EQ(r.mean_finite_loss(), 2.0);
}

}  // namespace
