// Causal softmax and grouped-query attention against hand computations.
#include "model/attention.h"

#include <gtest/gtest.h>

#include <cmath>

#include "model/error.h"

namespace {

TEST(CausalSoftmax, MasksLaterKeysAndNormalisesEachColumn) {
  Eigen::MatrixXf s(3, 3);
  s << 5, 0, 1,              //
      9, std::log(3.0f), 1,  //
      9, 9, 1;               // row = key, column = query
  model::causal_softmax_columns(s);
  // Query 0 sees key 0 only; query 1 sees keys 0, 1 (scores 0, ln 3); query 2 sees 3 equal keys.
  EXPECT_FLOAT_EQ(s(0, 0), 1);
  EXPECT_EQ(s(1, 0), 0);
  EXPECT_EQ(s(2, 0), 0);
  EXPECT_FLOAT_EQ(s(0, 1), 0.25f);
  EXPECT_FLOAT_EQ(s(1, 1), 0.75f);
  EXPECT_EQ(s(2, 1), 0);
  for (int i = 0; i < 3; ++i) EXPECT_FLOAT_EQ(s(i, 2), 1.0f / 3);
}

TEST(CausalSoftmax, LargeScoresDoNotOverflow) {
  Eigen::MatrixXf s(2, 2);
  s << 1000, 1000,  //
      0, 1000;
  model::causal_softmax_columns(s);
  EXPECT_FLOAT_EQ(s(0, 1), 0.5f);
  EXPECT_FLOAT_EQ(s(1, 1), 0.5f);
}

TEST(Attention, ScaledScoresWeighTheValues) {
  // One head of width 4 (scale 1/2), two tokens: query 1 scores keys 0 and 1 as 0 and ln 2.
  model::Activations q = model::Activations::Zero(4, 2), k = q, v = q;
  q(0, 1) = 2;
  k(0, 1) = std::log(2.0f);  // score = 2 * ln 2 / 2
  v.row(0) << 3, 6;
  v.row(3) << -3, 0;
  model::Activations out;
  model::AttentionCache cache;
  model::attention_forward(q, k, v, model::TokenBatch({{1, 2}}), {1, 1, 4}, out, &cache);
  EXPECT_FLOAT_EQ(out(0, 0), 3);  // query 0 sees only key 0
  EXPECT_FLOAT_EQ(out(3, 0), -3);
  EXPECT_NEAR(out(0, 1), 3.0 / 3 + 6.0 * 2 / 3, 1e-6);  // weights 1/3, 2/3
  EXPECT_NEAR(out(3, 1), -1, 1e-6);
  ASSERT_EQ(cache.probs.size(), 1u);
  EXPECT_NEAR(cache.probs[0](1, 1), 2.0 / 3, 1e-6);
  EXPECT_EQ(cache.probs[0](1, 0), 0);
}

TEST(Attention, QueryHeadsShareKvHeadsInGroups) {
  // 4 query heads, 2 kv heads of width 1: heads 0, 1 use kv head 0 and heads 2, 3 kv head 1.
  // Zero keys make attention uniform over the visible keys, so the output is a running mean.
  const model::TokenBatch batch({{1, 2, 3}, {4, 5}});
  model::Activations q = model::Activations::Random(4, 5);
  model::Activations k = model::Activations::Zero(2, 5);
  model::Activations v(2, 5);
  v.row(0) << 1, 2, 3, 10, 20;
  v.row(1) << -1, -2, -3, -10, -20;
  model::Activations out;
  model::attention_forward(q, k, v, batch, {4, 2, 1}, out);
  const float mean0[5] = {1, 1.5f, 2, 10, 15};  // per sequence: running means, no leakage
  for (int t = 0; t < 5; ++t) {
    EXPECT_FLOAT_EQ(out(0, t), mean0[t]) << t;
    EXPECT_FLOAT_EQ(out(1, t), mean0[t]) << t;
    EXPECT_FLOAT_EQ(out(2, t), -mean0[t]) << t;
    EXPECT_FLOAT_EQ(out(3, t), -mean0[t]) << t;
  }
}

TEST(Attention, RefusesShapesThatDoNotFit) {
  model::Activations q = model::Activations::Zero(4, 2), k = model::Activations::Zero(3, 2);
  model::Activations out;
  EXPECT_THROW(model::attention_forward(q, k, k, model::TokenBatch({{1, 2}}), {4, 2, 1}, out),
               model::ModelError);
}

}  // namespace
