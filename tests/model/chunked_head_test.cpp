// The LM head, the loss and its gradient a chunk of positions at a time (LlamaModel::lora_step,
// loss): with exact per-position products (int8) every chunking gives the unchunked step bit for
// bit, per-example shares included; with float GEMMs it agrees to rounding; the chunk size
// follows the logits budget.
#include <gtest/gtest.h>

#include <memory>
#include <vector>

#include "model/cross_entropy.h"
#include "model/float_backend.h"
#include "model/int8_backend.h"
#include "model/llama_model.h"
#include "model/lora_params.h"
#include "training_test_util.h"

namespace {

model::LoraConfig targets() {
  model::LoraConfig c;
  c.rank = 2;
  c.alpha = 4;
  c.targets = {model::ProjectionKind::kQ, model::ProjectionKind::kV,
               model::ProjectionKind::kDown};
  return c;
}

const model::TokenBatch& batch() {
  static const model::TokenBatch b(
      {{5, 17, 2, 30, 8, 8, 1, 4}, {11}, {3, 29, 14, 1, 0, 31}, {7, 7, 7, 2, 9}});
  return b;
}

// Bytes of logits + dlogits per position of the test config (vocab 32, float).
constexpr int64_t kPerPosition = 32 * 4 * 2;

bool same(const model::LoraParams& a, const model::LoraParams& b) {
  for (const model::ProjectionId id : a.ids()) {
    if (a.at(id).a != b.at(id).a || a.at(id).b != b.at(id).b) return false;
  }
  return true;
}

TEST(ChunkedHead, ChunkSizeFollowsTheLogitsBudget) {
  const auto weights = training_test::random_weights(training_test::tiny_config(1), 3);
  model::LlamaModel llama(weights, std::make_unique<model::Int8Backend>(*weights));
  EXPECT_EQ(llama.head_chunk(20), 20);  // the default budget holds this batch whole
  llama.set_logits_budget_bytes(3 * kPerPosition);
  EXPECT_EQ(llama.head_chunk(20), 3);
  llama.set_logits_budget_bytes(1);
  EXPECT_EQ(llama.head_chunk(20), 1);  // never less than one position
}

TEST(ChunkedHead, Int8StepsAreBitIdenticalForEveryChunking) {
  const auto weights = training_test::random_weights(training_test::tiny_config(2), 5);
  model::LoraParams lora(weights->config, targets());
  training_test::randomize(lora, 9, 0.3);
  model::LlamaModel whole(weights, std::make_unique<model::Int8Backend>(*weights));
  const model::LoraStep want = whole.lora_step(batch(), lora, /*per_example=*/true);
  // The unchunked reference: full logits, cross_entropy_forward, backward from dlogits.
  model::LlamaForwardCache cache;
  const model::Matrix logits = whole.forward(batch(), &cache, &lora);
  model::CrossEntropyCache ce;
  EXPECT_EQ(want.loss, model::cross_entropy_forward(logits, batch(), &ce));
  model::Matrix dlogits;
  model::cross_entropy_backward(logits, batch(), ce, 1.0, dlogits);
  EXPECT_TRUE(same(whole.backward(batch(), cache, dlogits, lora).batch, want.gradients.batch));

  for (const int64_t chunk : {1, 2, 3, 7, 16}) {
    model::LlamaModel chunked(weights, std::make_unique<model::Int8Backend>(*weights));
    chunked.set_logits_budget_bytes(chunk * kPerPosition);
    ASSERT_EQ(chunked.head_chunk(batch().total_tokens()), chunk);
    const model::LoraStep got = chunked.lora_step(batch(), lora, /*per_example=*/true);
    EXPECT_EQ(got.loss, want.loss) << "chunk " << chunk;
    EXPECT_TRUE(same(got.gradients.batch, want.gradients.batch)) << "chunk " << chunk;
    ASSERT_EQ(got.gradients.per_example.size(), want.gradients.per_example.size());
    for (size_t s = 0; s < got.gradients.per_example.size(); ++s) {
      EXPECT_TRUE(same(got.gradients.per_example[s], want.gradients.per_example[s]))
          << "chunk " << chunk << " sequence " << s;
    }
    EXPECT_EQ(chunked.loss(batch(), &lora), want.loss) << "chunk " << chunk;
  }
}

TEST(ChunkedHead, FloatStepsAgreeToRounding) {
  const auto weights = training_test::random_weights(training_test::tiny_config(2), 6);
  model::LoraParams lora(weights->config, targets());
  training_test::randomize(lora, 10, 0.3);
  model::LlamaModel whole(weights, std::make_unique<model::FloatBackend>(weights));
  model::LlamaModel chunked(weights, std::make_unique<model::FloatBackend>(weights));
  chunked.set_logits_budget_bytes(2 * kPerPosition);
  const model::LoraStep a = whole.lora_step(batch(), lora);
  const model::LoraStep b = chunked.lora_step(batch(), lora);
  EXPECT_NEAR(a.loss, b.loss, 1e-6 * a.loss);
  for (const model::ProjectionId id : a.gradients.batch.ids()) {
    const auto& ga = a.gradients.batch.at(id);
    const auto& gb = b.gradients.batch.at(id);
    EXPECT_LE((ga.b - gb.b).cwiseAbs().maxCoeff(), 1e-5f * (1 + ga.b.cwiseAbs().maxCoeff()));
    EXPECT_LE((ga.a - gb.a).cwiseAbs().maxCoeff(), 1e-5f * (1 + ga.a.cwiseAbs().maxCoeff()));
  }
}

TEST(ChunkedHead, ColumnsGiveTheRowwiseLossAndGradient) {
  const model::TokenBatch b({{1, 2, 3}, {0, 3}});
  std::mt19937_64 rng(4);
  const model::Matrix logits = training_test::random_matrix(5, 4, 2.0f, rng);
  model::CrossEntropyCache ce;
  const double want = model::cross_entropy_forward(logits, b, &ce);
  model::Matrix dlogits;
  model::cross_entropy_backward(logits, b, ce, 1.0, dlogits);
  const std::vector<int32_t> labels = model::next_token_labels(b, 4);
  EXPECT_EQ(labels, (std::vector<int32_t>{2, 3, -1, 3, -1}));
  const model::Activations columns = logits.transpose();
  model::Activations d;
  double sum = 0;
  model::cross_entropy_columns<float>(columns, labels, 1.0 / 3, &d, sum);
  EXPECT_EQ(sum / 3, want);
  EXPECT_EQ(model::Activations(d.transpose()), model::Activations(dlogits));
  EXPECT_THROW(model::next_token_labels(model::TokenBatch({{1, 9}}), 4), model::ModelError);
}

}  // namespace
