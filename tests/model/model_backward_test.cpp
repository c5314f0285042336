// The whole model's backward pass: LoRA gradients of every target kind against central finite
// differences of the loss in double precision, the float model against its double twin,
// per-example gradients, and FFA-LoRA.
#include <gtest/gtest.h>

#include <cstdio>
#include <memory>

#include "model/double_backend.h"
#include "model/error.h"
#include "model/float_backend.h"
#include "model/llama_model.h"
#include "model/lora_params.h"
#include "training_test_util.h"

namespace {

using model::ProjectionKind;

const std::vector<ProjectionKind> kAllKinds = {
    ProjectionKind::kQ,    ProjectionKind::kK,  ProjectionKind::kV,   ProjectionKind::kO,
    ProjectionKind::kGate, ProjectionKind::kUp, ProjectionKind::kDown};

model::LoraConfig all_targets(int64_t rank = 2) {
  model::LoraConfig c;
  c.rank = rank;
  c.alpha = 4;
  c.targets = kAllKinds;
  return c;
}

// Three sequences, one of a single token (it predicts nothing but still runs).
const model::TokenBatch& test_batch() {
  static const model::TokenBatch batch({{5, 17, 2, 30, 8, 8}, {11}, {3, 29, 14, 1}});
  return batch;
}

double max_abs(const model::LoraParamsT<double>& p) {
  double m = 0;
  for (const model::ProjectionId id : p.ids()) {
    m = std::max(m, p.at(id).a.size() ? p.at(id).a.cwiseAbs().maxCoeff() : 0.0);
    m = std::max(m, p.at(id).b.cwiseAbs().maxCoeff());
  }
  return m;
}

// max |a - b| over every element, both cast to double.
template <typename S1, typename S2>
double max_difference(const model::LoraParamsT<S1>& a, const model::LoraParamsT<S2>& b) {
  return max_abs([&] {
    model::LoraParamsT<double> d = a.template cast<double>();
    model::LoraParamsT<double> nb = b.template cast<double>();
    nb *= -1;
    d += nb;
    return d;
  }());
}

void check_model_gradients(const model::LlamaConfig& config, const model::LoraConfig& lc,
                           uint64_t seed) {
  const auto weights = training_test::random_weights(config, seed);
  model::LlamaModelT<double> llama(weights, std::make_unique<model::DoubleBackend>(*weights));
  model::LoraParamsT<double> lora(config, lc);
  training_test::randomize(lora, seed + 1, 0.4);
  const model::TokenBatch& batch = test_batch();
  const model::LoraStepT<double> step = llama.lora_step(batch, lora);
  EXPECT_DOUBLE_EQ(step.loss, llama.loss(batch, &lora));
  const auto f = [&] { return llama.loss(batch, &lora); };
  double worst = 0;
  for (const model::ProjectionId id : lora.ids()) {
    model::LoraPairT<double>& p = lora.at(id);
    const model::LoraPairT<double>& g = step.gradients.batch.at(id);
    const double ea = training_test::gradient_error(p.a.data(), g.a.data(), p.a.size(), f);
    const double eb = training_test::gradient_error(p.b.data(), g.b.data(), p.b.size(), f);
    std::printf("gradient check model %-22s A %.3g  B %.3g\n", model::projection_name(id).c_str(),
                ea, eb);
    EXPECT_LT(ea, training_test::kGradientTolerance) << model::projection_name(id);
    EXPECT_LT(eb, training_test::kGradientTolerance) << model::projection_name(id);
    worst = std::max({worst, ea, eb});
  }
  ::testing::Test::RecordProperty("max_relative_error", std::to_string(worst));
}

TEST(ModelBackward, LoraGradientsOfEveryTargetMatchFiniteDifferences) {
  check_model_gradients(training_test::tiny_config(2), all_targets(), 50);
}

TEST(ModelBackward, TiedEmbeddingsAndOtherRank) {
  model::LlamaConfig c = training_test::tiny_config(1);
  c.tie_word_embeddings = true;
  model::LoraConfig lc;
  lc.rank = 3;
  lc.alpha = 16;
  lc.targets = {ProjectionKind::kV, ProjectionKind::kDown};
  check_model_gradients(c, lc, 60);
}

TEST(ModelBackward, FloatGradientsAgreeWithTheDoubleTwin) {
  const model::LlamaConfig config = training_test::tiny_config(2);
  const auto weights = training_test::random_weights(config, 70);
  model::LlamaModelT<double> twin(weights, std::make_unique<model::DoubleBackend>(*weights));
  model::LlamaModel llama(weights, std::make_unique<model::FloatBackend>(weights));
  model::LoraParamsT<double> lora(config, all_targets());
  training_test::randomize(lora, 71, 0.4);
  // Round the adapter to float first, so both models see the same parameters.
  const model::LoraParams lora_f = lora.cast<float>();
  lora = lora_f.cast<double>();
  const auto d = twin.lora_step(test_batch(), lora);
  const auto s = llama.lora_step(test_batch(), lora_f);
  EXPECT_NEAR(s.loss, d.loss, 1e-5 * d.loss);
  const double error =
      max_difference(s.gradients.batch, d.gradients.batch) / max_abs(d.gradients.batch);
  std::printf("float vs double LoRA gradients: max error / max |gradient| = %.3g\n", error);
  EXPECT_LT(error, 1e-4);
}

// The per-example shares sum to the batch gradient: up to double rounding in double (1e-12 of
// the largest gradient) and float rounding in float (1e-5 of it; each sum has 3 terms, each
// formed by a GEMM over a few tokens instead of one over all of them).
TEST(ModelBackward, PerExampleGradientsSumToTheBatchGradient) {
  const model::LlamaConfig config = training_test::tiny_config(2);
  const auto weights = training_test::random_weights(config, 80);
  model::LoraParamsT<double> lora(config, all_targets());
  training_test::randomize(lora, 81, 0.4);
  const model::TokenBatch& batch = test_batch();

  model::LlamaModelT<double> twin(weights, std::make_unique<model::DoubleBackend>(*weights));
  const auto d = twin.lora_step(batch, lora, /*per_example=*/true);
  ASSERT_EQ(d.gradients.per_example.size(), 3u);
  model::LoraParamsT<double> sum_d = d.gradients.per_example[0];
  sum_d += d.gradients.per_example[1];
  sum_d += d.gradients.per_example[2];
  const double scale = max_abs(d.gradients.batch);
  ASSERT_GT(scale, 0);
  EXPECT_LT(max_difference(sum_d, d.gradients.batch), 1e-12 * scale);
  // The single-token sequence predicts nothing: its share is exactly 0.
  EXPECT_EQ(max_abs(d.gradients.per_example[1]), 0);

  model::LlamaModel llama(weights, std::make_unique<model::FloatBackend>(weights));
  const auto s = llama.lora_step(batch, lora.cast<float>(), /*per_example=*/true);
  model::LoraParams sum_s = s.gradients.per_example[0];
  sum_s += s.gradients.per_example[1];
  sum_s += s.gradients.per_example[2];
  const double error = max_difference(sum_s, s.gradients.batch) / scale;
  std::printf("float per-example sum vs batch gradient: %.3g of the largest gradient\n", error);
  EXPECT_LT(error, 1e-5);
}

// Sequences do not interact, so sequence s's share is (P_s / P) times the gradient of the
// sequence alone, P_s and P its and the batch's predicted positions.
TEST(ModelBackward, PerExampleShareIsTheSequenceAloneScaled) {
  const model::LlamaConfig config = training_test::tiny_config(1);
  const auto weights = training_test::random_weights(config, 90);
  model::LlamaModelT<double> twin(weights, std::make_unique<model::DoubleBackend>(*weights));
  model::LoraParamsT<double> lora(config, all_targets());
  training_test::randomize(lora, 91, 0.4);
  const std::vector<std::vector<int32_t>> sequences = {{5, 17, 2, 30, 8}, {3, 29, 14}};
  const auto batch = twin.lora_step(model::TokenBatch(sequences), lora, true);
  const double predicted = 4 + 2;
  for (size_t s = 0; s < sequences.size(); ++s) {
    auto alone = twin.lora_step(model::TokenBatch({sequences[s]}), lora).gradients.batch;
    alone *= static_cast<double>(sequences[s].size() - 1) / predicted;
    EXPECT_LT(max_difference(alone, batch.gradients.per_example[s]), 1e-12 * max_abs(alone)) << s;
  }
}

TEST(ModelBackward, FfaLoraLeavesAWithoutGradient) {
  const model::LlamaConfig config = training_test::tiny_config(2);
  const auto weights = training_test::random_weights(config, 100);
  model::LlamaModel llama(weights, std::make_unique<model::FloatBackend>(weights));
  model::LoraConfig lc = all_targets();
  model::LoraParams lora(config, lc);
  training_test::randomize(lora, 101, 0.4);
  const auto full = llama.lora_step(test_batch(), lora, true);
  lc.freeze_a = true;
  model::LoraParams frozen(config, lc);
  for (const model::ProjectionId id : lora.ids()) frozen.at(id) = lora.at(id);
  const auto ffa = llama.lora_step(test_batch(), frozen, true);
  EXPECT_EQ(ffa.loss, full.loss);
  for (const model::ProjectionId id : lora.ids()) {
    EXPECT_EQ(ffa.gradients.batch.at(id).a.size(), 0) << model::projection_name(id);
    EXPECT_EQ(full.gradients.batch.at(id).a.size(), lora.at(id).a.size());
    for (const auto& share : ffa.gradients.per_example) EXPECT_EQ(share.at(id).a.size(), 0);
    // B's gradient does not depend on whether A trains.
    EXPECT_EQ(ffa.gradients.batch.at(id).b, full.gradients.batch.at(id).b);
  }
  int64_t a_elements = 0;
  for (const model::ProjectionId id : lora.ids()) a_elements += lora.at(id).a.size();
  EXPECT_EQ(ffa.gradients.batch.parameter_count(),
            full.gradients.batch.parameter_count() - a_elements);
}

TEST(ModelBackward, RefusesMismatchedInputs) {
  const model::LlamaConfig config = training_test::tiny_config(1);
  const auto weights = training_test::random_weights(config, 110);
  model::LlamaModel llama(weights, std::make_unique<model::FloatBackend>(weights));
  const model::LoraParams lora(config, all_targets());
  const model::TokenBatch& batch = test_batch();
  model::LlamaForwardCache cache;
  const model::Matrix logits = llama.forward(batch, &cache, &lora);
  // dL/dlogits of the wrong shape.
  EXPECT_THROW(llama.backward(batch, cache, model::Matrix::Zero(3, config.vocab_size), lora),
               model::ModelError);
  // A cache from a forward pass without the adapter.
  model::LlamaForwardCache plain;
  llama.forward(batch, &plain);
  EXPECT_THROW(llama.backward(batch, plain, logits, lora), model::ModelError);
  // A cache from another batch.
  EXPECT_THROW(llama.backward(model::TokenBatch({{1, 2}}), cache, model::Matrix::Zero(2, 32), lora),
               model::ModelError);
  // An adapter for another model.
  const model::LoraParams other(training_test::tiny_config(2), all_targets());
  EXPECT_THROW(llama.forward(batch, nullptr, &other), model::ModelError);
  EXPECT_THROW(llama.lora_step(batch, other), model::ModelError);
}

}  // namespace
