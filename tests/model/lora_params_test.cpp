// LoRA adapters: configuration checks, PEFT's initialisation, and an adapter with B = 0 leaving
// the model's forward pass unchanged.
#include <gtest/gtest.h>

#include <cmath>
#include <memory>
#include <random>

#include "model/error.h"
#include "model/float_backend.h"
#include "model/int8_backend.h"
#include "model/llama_model.h"
#include "model/lora_branch.h"
#include "model/lora_params.h"
#include "training_test_util.h"

namespace {

using model::ProjectionKind;

TEST(LoraConfig, RefusesBadConfigs) {
  model::LoraConfig c;
  EXPECT_NO_THROW(model::validate_lora_config(c));
  EXPECT_DOUBLE_EQ(c.scaling(), 2.0);
  c.rank = 0;
  EXPECT_THROW(model::validate_lora_config(c), model::ModelError);
  c = {};
  c.alpha = NAN;
  EXPECT_THROW(model::validate_lora_config(c), model::ModelError);
  c = {};
  c.targets = {};
  EXPECT_THROW(model::validate_lora_config(c), model::ModelError);
  c.targets = {ProjectionKind::kLmHead};
  EXPECT_THROW(model::validate_lora_config(c), model::ModelError);
  c.targets = {ProjectionKind::kQ, ProjectionKind::kUp, ProjectionKind::kQ};
  EXPECT_THROW(model::validate_lora_config(c), model::ModelError);
  EXPECT_THROW(model::LoraParams(training_test::tiny_config(), c), model::ModelError);
}

TEST(LoraParams, ShapesFollowTheProjections) {
  const model::LlamaConfig config = training_test::tiny_config(2);
  model::LoraConfig c;
  c.rank = 3;
  c.targets = {ProjectionKind::kDown, ProjectionKind::kK};
  const model::LoraParams p(config, c);
  ASSERT_EQ(p.ids().size(), 4u);  // forward order: layer 0's k, down, then layer 1's
  EXPECT_EQ(p.ids()[0], (model::ProjectionId{ProjectionKind::kK, 0}));
  EXPECT_EQ(p.ids()[1], (model::ProjectionId{ProjectionKind::kDown, 0}));
  EXPECT_EQ(p.ids()[3], (model::ProjectionId{ProjectionKind::kDown, 1}));
  const model::LoraPair& k = p.at({ProjectionKind::kK, 1});
  EXPECT_EQ(k.a.rows(), 3);
  EXPECT_EQ(k.a.cols(), config.hidden_size);
  EXPECT_EQ(k.b.rows(), config.kv_dim());
  EXPECT_EQ(k.b.cols(), 3);
  const model::LoraPair& down = p.at({ProjectionKind::kDown, 0});
  EXPECT_EQ(down.a.cols(), config.intermediate_size);
  EXPECT_EQ(down.b.rows(), config.hidden_size);
  EXPECT_EQ(p.find({ProjectionKind::kQ, 0}), nullptr);
  EXPECT_EQ(p.find(model::ProjectionId::lm_head()), nullptr);
  EXPECT_THROW(p.at({ProjectionKind::kQ, 0}), model::ModelError);
  EXPECT_EQ(p.parameter_count(), 2 * 3 * (16 + 8 + 24 + 16));
  EXPECT_NO_THROW(p.check_fits(config));
  EXPECT_THROW(p.check_fits(training_test::tiny_config(3)), model::ModelError);
  model::LlamaConfig wider = config;
  wider.intermediate_size = 32;
  EXPECT_THROW(p.check_fits(wider), model::ModelError);
  // Gradients of a frozen-A adapter have no A.
  const model::LoraParams grads(config, c, /*with_a=*/false);
  EXPECT_EQ(grads.at({ProjectionKind::kK, 0}).a.size(), 0);
  EXPECT_NO_THROW(grads.check_fits(config));
}

TEST(LoraParams, PeftInitialisation) {
  const model::LlamaConfig config = training_test::tiny_config(2);
  model::LoraConfig c;
  c.targets = {ProjectionKind::kQ, ProjectionKind::kDown};
  std::mt19937_64 rng(7);
  const model::LoraParams p = model::init_lora_params(config, c, rng);
  for (const model::ProjectionId id : p.ids()) {
    const model::LoraPair& pair = p.at(id);
    EXPECT_EQ(pair.b.cwiseAbs().maxCoeff(), 0) << "B starts at zero";
    // kaiming_uniform_(a = sqrt(5)) on [rank, d_in]: bound 1 / sqrt(d_in).
    const double bound = 1 / std::sqrt(static_cast<double>(pair.a.cols()));
    EXPECT_LE(pair.a.cwiseAbs().maxCoeff(), bound);
    EXPECT_GT(pair.a.cwiseAbs().maxCoeff(), 0.8 * bound) << "fills the range";
    // Uniform on [-b, b]: variance b^2 / 3.
    const double var = pair.a.cast<double>().squaredNorm() / static_cast<double>(pair.a.size());
    EXPECT_NEAR(var, bound * bound / 3, 0.25 * bound * bound / 3);
  }
  std::mt19937_64 same(7), other(8);
  const model::LoraParams again = model::init_lora_params(config, c, same);
  const model::LoraParams different = model::init_lora_params(config, c, other);
  const model::ProjectionId q0{ProjectionKind::kQ, 0};
  EXPECT_EQ(again.at(q0).a, p.at(q0).a);
  EXPECT_NE(different.at(q0).a, p.at(q0).a);
}

TEST(LoraBranch, ZeroBLeavesTheForwardUnchanged) {
  const model::LlamaConfig config = training_test::tiny_config(2);
  const auto weights = training_test::random_weights(config, 20);
  model::LoraConfig c;
  c.targets = {ProjectionKind::kQ,    ProjectionKind::kK,  ProjectionKind::kV,   ProjectionKind::kO,
               ProjectionKind::kGate, ProjectionKind::kUp, ProjectionKind::kDown};
  std::mt19937_64 rng(21);
  const model::LoraParams lora = model::init_lora_params(config, c, rng);
  const model::TokenBatch batch({{1, 2, 3, 4}, {5, 6}});
  for (int int8 = 0; int8 < 2; ++int8) {
    std::unique_ptr<model::LinearBackend> backend;
    if (int8) {
      backend = std::make_unique<model::Int8Backend>(*weights);
    } else {
      backend = std::make_unique<model::FloatBackend>(weights);
    }
    model::LlamaModel llama(weights, std::move(backend));
    const model::Matrix plain = llama.forward(batch);
    const model::Matrix adapted = llama.forward(batch, nullptr, &lora);
    EXPECT_TRUE((plain.array() == adapted.array()).all()) << llama.backend().name();
  }
  // A non-zero B changes it.
  model::LoraParams moved = lora;
  moved.at({ProjectionKind::kV, 1}).b.setConstant(0.1f);
  model::LlamaModel llama(weights, std::make_unique<model::FloatBackend>(weights));
  EXPECT_GT((llama.forward(batch, nullptr, &moved) - llama.forward(batch)).cwiseAbs().maxCoeff(),
            1e-3f);
}

TEST(LoraBranch, ComputesTheLowRankUpdate) {
  model::LoraPair p;
  p.a.resize(1, 2);
  p.a << 1, 2;
  p.b.resize(2, 1);
  p.b << 3, -1;
  model::Activations x(2, 1), y = model::Activations::Zero(2, 1), ax;
  x << 5, 7;
  model::lora_forward(p, 0.5f, x, y, ax);
  EXPECT_EQ(ax(0, 0), 19);  // A x
  EXPECT_EQ(y(0, 0), 0.5f * 3 * 19);
  EXPECT_EQ(y(1, 0), 0.5f * -19);
  model::Activations bad = model::Activations::Zero(3, 1);
  EXPECT_THROW(model::lora_forward(p, 0.5f, x, bad, ax), model::ModelError);
  model::LoraPair grad{model::Matrix::Zero(1, 2), model::Matrix::Zero(2, 1)};
  const model::Activations g = model::Activations::Ones(2, 1);
  EXPECT_THROW(model::lora_weight_backward(p, 0.5f, x, ax, g, 0, 2, grad), model::ModelError);
  model::lora_weight_backward(p, 0.5f, x, ax, g, 0, 1, grad);
  EXPECT_EQ(grad.b(0, 0), 0.5f * 19);           // s g (A x)^T
  EXPECT_EQ(grad.a(0, 1), 0.5f * (3 - 1) * 7);  // s (B^T g) x^T
}

}  // namespace
