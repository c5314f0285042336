// The three linear backends on whole models: float vs int8 (a stated error bound), encrypted vs
// int8 (bit for bit, also past one 2048-token ciphertext block), and batching.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <random>
#include <vector>

#include "model/encrypted_backend.h"
#include "model/error.h"
#include "model/float_backend.h"
#include "model/int8_backend.h"
#include "model/linear_backends.h"
#include "model/llama_model.h"
#include "model/random_model.h"
#include "test_util.h"

namespace {

// Largest int8-vs-float logit error observed on these random models is about 2% of the largest
// logit (see the test's printout); the bound leaves room for other seeds and shapes.
constexpr double kInt8RelativeBound = 0.05;

std::shared_ptr<const model::LlamaWeights> random_weights(const model::LlamaConfig& config,
                                                          uint64_t seed) {
  model_test::TempDir dir;
  model::write_random_llama(dir.path(), config, {seed, model::DType::kF32});
  return std::make_shared<const model::LlamaWeights>(model::load_llama_weights(dir.path()));
}

model::LlamaConfig gqa_config(int64_t max_positions) {
  model::LlamaConfig c;
  c.hidden_size = 64;
  c.intermediate_size = 172;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;
  c.head_dim = 16;
  c.vocab_size = 272;
  c.max_position_embeddings = max_positions;
  c.rms_norm_eps = 1e-5;
  return c;
}

std::vector<std::vector<int32_t>> random_sequences(const std::vector<int>& lengths, int64_t vocab,
                                                   uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int32_t> dist(0, static_cast<int32_t>(vocab - 1));
  std::vector<std::vector<int32_t>> out;
  for (int n : lengths) {
    std::vector<int32_t> s(static_cast<size_t>(n));
    for (auto& t : s) t = dist(rng);
    out.push_back(s);
  }
  return out;
}

model::Matrix run(std::shared_ptr<const model::LlamaWeights> w,
                  std::unique_ptr<model::LinearBackend> backend, const model::TokenBatch& batch) {
  model::LlamaModel llama(std::move(w), std::move(backend));
  return llama.forward(batch);
}

bool bit_identical(const model::Matrix& a, const model::Matrix& b) {
  return a.rows() == b.rows() && a.cols() == b.cols() &&
         std::memcmp(a.data(), b.data(), sizeof(float) * static_cast<size_t>(a.size())) == 0;
}

TEST(LinearBackends, Int8StaysCloseToFloat) {
  double worst = 0;
  for (const bool tied : {false, true}) {
    model::LlamaConfig c = gqa_config(64);
    c.tie_word_embeddings = tied;
    const auto w = random_weights(c, tied ? 21 : 20);
    const model::TokenBatch batch(random_sequences({7, 16, 30}, c.vocab_size, 3));
    const model::Matrix f = run(w, std::make_unique<model::FloatBackend>(w), batch);
    const model::Matrix q = run(w, std::make_unique<model::Int8Backend>(*w), batch);
    const double max_ref = f.cwiseAbs().maxCoeff();
    const double err = (f - q).cwiseAbs().maxCoeff() / max_ref;
    EXPECT_GT(err, 0) << "int8 cannot be exact";
    EXPECT_LE(err, kInt8RelativeBound) << "tied " << tied;
    worst = std::max(worst, err);
  }
  std::printf("int8 vs float: max |logit error| / max |logit| = %.4g (bound %.3g)\n", worst,
              kInt8RelativeBound);
  RecordProperty("int8_max_relative_error", std::to_string(worst));
}

TEST(LinearBackends, EncryptedEqualsInt8BitForBit) {
  const model::LlamaConfig c = gqa_config(1200);
  const auto w = random_weights(c, 30);
  model::Int8Backend int8(*w);
  model::EncryptedBackend encrypted(*w);
  model::LlamaModel a(w, std::make_unique<model::Int8Backend>(*w));
  model::LlamaModel b(w, std::make_unique<model::EncryptedBackend>(*w));
  // A small batch, and 2 x 1100 = 2200 tokens: two ciphertext blocks per projection.
  for (const auto& lengths : {std::vector<int>{5, 1, 12}, std::vector<int>{1100, 1100}}) {
    const model::TokenBatch batch(random_sequences(lengths, c.vocab_size, 4));
    const model::Matrix qa = a.forward(batch);
    const model::Matrix qb = b.forward(batch);
    EXPECT_TRUE(bit_identical(qa, qb)) << batch.total_tokens() << " tokens";
    EXPECT_EQ(a.loss(batch), b.loss(batch));
  }
}

TEST(LinearBackends, EncryptedProjectionEqualsInt8PastOneBlock) {
  const model::LlamaConfig c = gqa_config(64);
  const auto w = random_weights(c, 31);
  model::Int8Backend int8(*w);
  model::EncryptedBackend encrypted(*w);
  std::mt19937 rng(5);
  std::normal_distribution<float> gauss(0, 3);
  model::Activations x(c.intermediate_size, 2049);
  for (int64_t i = 0; i < x.size(); ++i) x.data()[i] = gauss(rng);
  x.col(7).setZero();  // an all-zero token has scale 1
  const model::ProjectionId down{model::ProjectionKind::kDown, 1};
  model::Activations ya, yb;
  int8.forward(down, x, ya);
  encrypted.forward(down, x, yb);
  ASSERT_EQ(ya.rows(), c.hidden_size);
  ASSERT_EQ(ya.cols(), 2049);
  EXPECT_EQ(std::memcmp(ya.data(), yb.data(), sizeof(float) * ya.size()), 0);
  EXPECT_EQ(ya.col(7).cwiseAbs().maxCoeff(), 0.0f);
}

TEST(LinearBackends, BackendsRefuseAWrongInputWidth) {
  const auto w = random_weights(gqa_config(64), 32);
  const model::Activations x = model::Activations::Zero(10, 3);
  model::Activations y;
  for (const auto kind :
       {model::BackendKind::kFloat, model::BackendKind::kInt8, model::BackendKind::kEncrypted}) {
    auto backend = model::make_linear_backend(kind, w);
    EXPECT_THROW(backend->forward({model::ProjectionKind::kQ, 0}, x, y), model::ModelError);
    EXPECT_THROW(backend->forward({model::ProjectionKind::kQ, 2}, x, y), model::ModelError);
  }
  EXPECT_THROW(model::parse_backend_kind("fp16"), model::ModelError);
}

TEST(LlamaModel, BatchedSequencesEqualSequencesAlone) {
  const model::LlamaConfig c = gqa_config(64);
  const auto w = random_weights(c, 33);
  const auto sequences = random_sequences({9, 3, 14}, c.vocab_size, 6);
  model::LlamaModel llama(w, std::make_unique<model::FloatBackend>(w));
  const model::TokenBatch batch(sequences);
  const model::Matrix all = llama.forward(batch);
  for (size_t s = 0; s < sequences.size(); ++s) {
    const model::Matrix alone = llama.forward(model::TokenBatch({sequences[s]}));
    const auto rows = all.middleRows(batch.spans()[s].begin, batch.spans()[s].length);
    EXPECT_LE((rows - alone).cwiseAbs().maxCoeff(), 1e-6 * alone.cwiseAbs().maxCoeff()) << s;
  }
}

TEST(LlamaModel, CacheHoldsTheActivations) {
  const model::LlamaConfig c = gqa_config(64);
  const auto w = random_weights(c, 34);
  model::LlamaModel llama(w, std::make_unique<model::FloatBackend>(w));
  const model::TokenBatch batch({{1, 2, 3}, {4, 5}});
  model::LlamaForwardCache cache;
  const model::Matrix logits = llama.forward(batch, &cache);
  EXPECT_TRUE(bit_identical(logits, llama.forward(batch)));
  ASSERT_EQ(cache.layers.size(), 2u);
  const model::DecoderLayerCache& l1 = cache.layers[1];
  EXPECT_EQ(l1.q.rows(), c.q_dim());
  EXPECT_EQ(l1.k.rows(), c.kv_dim());
  EXPECT_EQ(l1.act.rows(), c.intermediate_size);
  EXPECT_EQ(l1.act.cols(), 5);
  ASSERT_EQ(l1.attention.probs.size(), 2u * c.num_attention_heads);
  EXPECT_EQ(l1.attention.probs.back().rows(), 2);
  // Layer 1's input is layer 0's output; the LM head's input gives the logits.
  model::Activations expected_out = cache.layers[0].mid;
  model::Activations down;
  model::FloatBackend(w).forward({model::ProjectionKind::kDown, 0}, cache.layers[0].act, down);
  expected_out += down;
  EXPECT_TRUE(l1.input.isApprox(expected_out, 1e-6f));
  model::Activations head;
  model::FloatBackend(w).forward(model::ProjectionId::lm_head(), cache.final_norm, head);
  EXPECT_TRUE(bit_identical(head.transpose(), logits));
}

TEST(LlamaModel, RefusesBadBatches) {
  const auto w = random_weights(gqa_config(8), 35);
  model::LlamaModel llama(w, std::make_unique<model::FloatBackend>(w));
  EXPECT_THROW(llama.forward(model::TokenBatch()), model::ModelError);
  EXPECT_THROW(llama.forward(model::TokenBatch({{1, 272}})), model::ModelError);
  const std::vector<std::vector<int32_t>> too_long = {std::vector<int32_t>(9, 1)};
  EXPECT_THROW(llama.forward(model::TokenBatch(too_long)), model::ModelError);
  EXPECT_THROW(llama.loss(model::TokenBatch({{1}, {2}})), model::ModelError);
  EXPECT_THROW(model::LlamaModel(w, nullptr), model::ModelError);
}

}  // namespace
