// Full-parameter training (weight_gradients.h, pretrain.h): every base weight's gradient from
// LlamaModel::weight_step against an independent computation (the projections' against the LoRA
// B gradient with A = I, which the LoRA tests check against finite differences; the norms',
// embeddings' and LM head's against central differences in double), the float step against its
// double twin, and pretraining that lowers the loss and writes a checkpoint that loads back
// bit for bit.
#include <gtest/gtest.h>

#include <cmath>
#include <memory>
#include <random>

#include "model/byte_tokenizer.h"
#include "model/double_backend.h"
#include "model/error.h"
#include "model/float_backend.h"
#include "model/llama_model.h"
#include "model/lora_params.h"
#include "model/pretrain.h"
#include "model/random_model.h"
#include "model/weight_gradients.h"
#include "test_support/temp_dir.h"
#include "training_test_util.h"

namespace {

using model::ProjectionKind;

const model::TokenBatch& test_batch() {
  static const model::TokenBatch batch({{5, 17, 2, 30, 8, 8}, {11}, {3, 29, 14, 1}});
  return batch;
}

double max_abs_difference(const model::Matrix& a, const Eigen::MatrixXd& b) {
  return (a.cast<double>() - b).cwiseAbs().maxCoeff();
}

// dW of every projection equals dL/dB of a LoRA adapter with A = [I; 0], B = 0, scaling 1:
// dL/dB = g (A x)^T, whose first d_in columns are g x^T.
TEST(WeightStep, ProjectionGradientsEqualLoraGradientsWithIdentityA) {
  const model::LlamaConfig config = training_test::tiny_config(2);
  const auto weights = training_test::random_weights(config, 21);
  model::LlamaModelT<double> llama(weights, std::make_unique<model::DoubleBackend>(*weights));
  const model::WeightStep full = llama.weight_step(test_batch());

  model::LoraConfig lc;
  lc.rank = std::max(config.intermediate_size, config.q_dim());
  lc.alpha = static_cast<double>(lc.rank);  // scaling 1
  lc.targets = {ProjectionKind::kQ,   ProjectionKind::kK,    ProjectionKind::kV,
                ProjectionKind::kO,   ProjectionKind::kGate, ProjectionKind::kUp,
                ProjectionKind::kDown};
  model::LoraParamsT<double> lora(config, lc);
  for (const model::ProjectionId id : lora.ids()) {
    auto& pair = lora.at(id);
    pair.a.setZero();
    for (int64_t i = 0; i < pair.a.cols(); ++i) pair.a(i, i) = 1.0;
    pair.b.setZero();
  }
  const model::LoraStepT<double> step = llama.lora_step(test_batch(), lora);
  EXPECT_NEAR(step.loss, full.loss, 1e-12);
  for (const model::ProjectionId id : lora.ids()) {
    const auto& gb = step.gradients.batch.at(id).b;
    const model::Matrix& dw =
        model::layer_projection_weight(full.gradients.layers[id.layer], id.kind);
    ASSERT_EQ(dw.rows(), gb.rows());
    const Eigen::MatrixXd expected = gb.leftCols(dw.cols());
    const double scale = expected.cwiseAbs().maxCoeff();
    ASSERT_GT(scale, 0) << model::projection_name(id);
    EXPECT_LT(max_abs_difference(dw, expected) / scale, 1e-6) << model::projection_name(id);
  }
}

// Central differences of the double loss for a few entries of a tensor (perturbed in the float
// weights, the model rebuilt for each), against the analytic gradient.
double check_entries(const std::shared_ptr<model::LlamaWeights>& w, float* values,
                     const float* analytic, size_t size, uint64_t seed) {
  std::mt19937_64 rng(seed);
  const float h = 1e-3f;
  double worst = 0, scale = 0;
  for (int k = 0; k < 6; ++k) {
    const size_t i = rng() % size;
    const float saved = values[i];
    const auto loss = [&] {
      model::LlamaModelT<double> m(w, std::make_unique<model::DoubleBackend>(*w));
      return m.loss(test_batch());
    };
    values[i] = saved + h;
    const float up_step = values[i] - saved;
    const double up = loss();
    values[i] = saved - h;
    const float down_step = saved - values[i];
    const double down = loss();
    values[i] = saved;
    const double numeric = (up - down) / (static_cast<double>(up_step) + down_step);
    worst = std::max(worst, std::fabs(numeric - analytic[i]));
    scale = std::max(scale, std::fabs(static_cast<double>(analytic[i])));
  }
  return scale > 0 ? worst / scale : INFINITY;
}

void check_other_gradients(bool tied) {
  model::LlamaConfig config = training_test::tiny_config(2);
  config.tie_word_embeddings = tied;
  auto w = std::make_shared<model::LlamaWeights>(*training_test::random_weights(config, 5, 0.3f));
  if (tied) w->lm_head_weight.resize(0, 0);
  model::LlamaModelT<double> llama(w, std::make_unique<model::DoubleBackend>(*w));
  model::WeightStep full = llama.weight_step(test_batch());
  std::vector<model::NamedTensor> values = model::named_tensors(*w);
  std::vector<model::NamedTensor> grads = model::named_tensors(full.gradients);
  ASSERT_EQ(values.size(), grads.size());
  int checked = 0;
  for (size_t t = 0; t < values.size(); ++t) {
    ASSERT_EQ(values[t].name, grads[t].name);
    ASSERT_EQ(values[t].size, grads[t].size);
    const bool other = values[t].name.find("norm") != std::string::npos ||
                       values[t].name.find("embed") != std::string::npos ||
                       values[t].name.find("lm_head") != std::string::npos;
    if (!other) continue;
    const double e = check_entries(w, values[t].data, grads[t].data, values[t].size, t + 1);
    EXPECT_LT(e, 2e-3) << values[t].name << (tied ? " (tied)" : "");
    ++checked;
  }
  EXPECT_EQ(checked, 2 * 2 + 1 + (tied ? 1 : 2));
}

TEST(WeightStep, NormEmbeddingAndHeadGradientsMatchFiniteDifferences) {
  check_other_gradients(false);
}

TEST(WeightStep, TiedEmbeddingsGetBothShares) {
  check_other_gradients(true);
}

TEST(WeightStep, FloatStepMatchesItsDoubleTwin) {
  const model::LlamaConfig config = training_test::tiny_config(2);
  const auto weights = training_test::random_weights(config, 9);
  model::LlamaModelT<double> twin(weights, std::make_unique<model::DoubleBackend>(*weights));
  model::LlamaModel llama(weights, std::make_unique<model::FloatBackend>(weights));
  model::WeightStep a = llama.weight_step(test_batch());
  model::WeightStep b = twin.weight_step(test_batch());
  EXPECT_NEAR(a.loss, b.loss, 1e-5);
  const auto fa = model::named_tensors(a.gradients);
  const auto fb = model::named_tensors(b.gradients);
  for (size_t t = 0; t < fa.size(); ++t) {
    double diff = 0, scale = 0;
    for (size_t i = 0; i < fa[t].size; ++i) {
      diff = std::max(diff, static_cast<double>(std::fabs(fa[t].data[i] - fb[t].data[i])));
      scale = std::max(scale, static_cast<double>(std::fabs(fb[t].data[i])));
    }
    EXPECT_LT(diff, 1e-3 * scale + 1e-7) << fa[t].name;
  }
}

TEST(WeightStep, RefusesWeightsWithoutTheirProjections) {
  const model::LlamaConfig config = training_test::tiny_config(1);
  auto w = std::make_shared<model::LlamaWeights>(*training_test::random_weights(config, 3));
  w->embed_tokens.resize(0, 0);
  model::LlamaModel llama(w, std::make_unique<model::FloatBackend>(w));
  EXPECT_THROW(llama.weight_step(test_batch()), model::ModelError);
}

TEST(Pretrain, LowersTheLossAndWritesACheckpointThatLoadsBack) {
  test_support::TempDir dir;
  model::LlamaConfig config = training_test::tiny_config(2);
  config.vocab_size = 300;  // bytes
  config.max_position_embeddings = 64;
  model::write_random_llama(dir / "random", config, {.seed = 4});
  auto w = std::make_shared<model::LlamaWeights>(model::load_llama_weights(dir / "random"));
  const model::ByteTokenizer tokenizer(config.vocab_size);
  std::vector<std::string> texts;
  for (int i = 0; i < 40; ++i) {
    texts.push_back("The shop opens at " + std::to_string(8 + i % 3) +
                    " am. Bread, milk and tea are on the list.");
  }
  const model::TextDataset windows(model::document_windows(texts, tokenizer, 32));
  EXPECT_GE(windows.size(), 80);  // each text is more than one window
  int64_t observed = 0;
  const model::PretrainResult r =
      model::pretrain_llama(w, windows, {.steps = 80, .batch_size = 8, .lr = 1e-2, .seed = 2},
                            [&](const model::PretrainStepReport& s) {
                              EXPECT_EQ(s.step, ++observed);
                              EXPECT_EQ(s.steps, 80);
                            });
  ASSERT_EQ(r.losses.size(), 80u);
  EXPECT_EQ(observed, 80);
  EXPECT_GT(r.losses.front(), 5.0);  // about log(300) at the start
  EXPECT_LT(r.losses.back(), 0.5 * r.losses.front());

  model::write_llama_weights(dir / "trained", *w);
  model::LlamaWeights back = model::load_llama_weights(dir / "trained");
  const auto a = model::named_tensors(*w);
  const auto b = model::named_tensors(back);
  ASSERT_EQ(a.size(), b.size());
  for (size_t t = 0; t < a.size(); ++t) {
    ASSERT_EQ(a[t].size, b[t].size);
    EXPECT_TRUE(std::equal(a[t].data, a[t].data + a[t].size, b[t].data)) << a[t].name;
  }
}

TEST(Pretrain, RefusesBadOptions) {
  EXPECT_THROW(model::validate_pretrain_options({.steps = 0}), model::ModelError);
  EXPECT_THROW(model::validate_pretrain_options({.batch_size = 0}), model::ModelError);
  EXPECT_THROW(model::validate_pretrain_options({.lr = -1}), model::ModelError);
  EXPECT_THROW(model::validate_pretrain_options({.lr = NAN}), model::ModelError);
  EXPECT_THROW(model::validate_pretrain_options({.warmup_steps = -1}), model::ModelError);
  const model::ByteTokenizer tokenizer(300);
  const std::vector<std::string> empty_texts = {""};
  EXPECT_THROW(model::document_windows(empty_texts, tokenizer, 1), model::ModelError);
}

}  // namespace
