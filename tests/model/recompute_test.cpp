// Activation recomputation (LlamaModel::set_recompute_activations): a step that keeps only each
// layer's input and runs the layer's forward again before its backward gives the same loss and
// the same LoRA gradients bit for bit as a step that keeps every activation, per-example shares
// included, with exact (int8) and float products; its forward cache holds the inputs only.
#include <gtest/gtest.h>

#include <memory>

#include "model/float_backend.h"
#include "model/int8_backend.h"
#include "model/llama_model.h"
#include "model/lora_params.h"
#include "training_test_util.h"

namespace {

model::LoraConfig all_targets() {
  model::LoraConfig c;
  c.rank = 2;
  c.alpha = 4;
  c.targets = {model::ProjectionKind::kQ,    model::ProjectionKind::kK,
               model::ProjectionKind::kV,    model::ProjectionKind::kO,
               model::ProjectionKind::kGate, model::ProjectionKind::kUp,
               model::ProjectionKind::kDown};
  return c;
}

const model::TokenBatch& batch() {
  static const model::TokenBatch b({{5, 17, 2, 30, 8, 8, 1, 4}, {11, 3}, {3, 29, 14, 1, 0, 31}});
  return b;
}

bool same(const model::LoraParams& a, const model::LoraParams& b) {
  if (a.ids() != b.ids()) return false;
  for (const model::ProjectionId id : a.ids()) {
    if (a.at(id).a != b.at(id).a || a.at(id).b != b.at(id).b) return false;
  }
  return true;
}

std::unique_ptr<model::LinearBackend> make(const std::shared_ptr<const model::LlamaWeights>& w,
                                           bool exact) {
  if (exact) return std::make_unique<model::Int8Backend>(*w);
  return std::make_unique<model::FloatBackend>(w);
}

void expect_same_step(bool exact, uint64_t seed) {
  const auto weights = training_test::random_weights(training_test::tiny_config(3), seed);
  model::LoraParams lora(weights->config, all_targets());
  training_test::randomize(lora, seed + 1, 0.3);
  model::LlamaModel keep(weights, make(weights, exact));
  model::LlamaModel recompute(weights, make(weights, exact));
  recompute.set_recompute_activations(true);
  EXPECT_FALSE(keep.recompute_activations());
  EXPECT_TRUE(recompute.recompute_activations());
  const model::LoraStep want = keep.lora_step(batch(), lora, /*per_example=*/true);
  const model::LoraStep got = recompute.lora_step(batch(), lora, /*per_example=*/true);
  EXPECT_EQ(got.loss, want.loss);
  EXPECT_TRUE(same(got.gradients.batch, want.gradients.batch));
  ASSERT_EQ(got.gradients.per_example.size(), want.gradients.per_example.size());
  for (size_t s = 0; s < want.gradients.per_example.size(); ++s) {
    EXPECT_TRUE(same(got.gradients.per_example[s], want.gradients.per_example[s]))
        << "sequence " << s;
  }
  // Something was trained: the gradients are not all zero.
  bool nonzero = false;
  for (const model::ProjectionId id : want.gradients.batch.ids()) {
    nonzero = nonzero || want.gradients.batch.at(id).b.cwiseAbs().maxCoeff() > 0;
  }
  EXPECT_TRUE(nonzero);
}

TEST(RecomputeActivations, Int8StepIsBitIdentical) {
  expect_same_step(/*exact=*/true, 21);
}

TEST(RecomputeActivations, FloatStepIsBitIdentical) {
  expect_same_step(/*exact=*/false, 23);
}

TEST(RecomputeActivations, ForwardCacheKeepsOnlyLayerInputs) {
  const auto weights = training_test::random_weights(training_test::tiny_config(2), 4);
  model::LoraParams lora(weights->config, all_targets());
  model::LlamaModel llama(weights, std::make_unique<model::Int8Backend>(*weights));
  model::LlamaForwardCache full;
  llama.forward(batch(), &full, &lora);
  EXPECT_FALSE(full.inputs_only);
  ASSERT_EQ(full.layers.size(), 2u);
  EXPECT_GT(full.layers[1].gate.size(), 0);
  EXPECT_GT(full.layers[1].attn_norm.size(), 0);
  // A model that recomputes still gives callers of forward() every activation: only lora_step
  // drops them, and backward() of a full cache works as before.
  llama.set_recompute_activations(true);
  model::LlamaForwardCache again;
  const auto logits = llama.forward(batch(), &again, &lora);
  EXPECT_EQ(logits.rows(), batch().total_tokens());
  EXPECT_FALSE(again.inputs_only);
  EXPECT_GT(again.layers[0].gate.size(), 0);
}

}  // namespace
