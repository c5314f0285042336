// The backward pass of every layer type against central finite differences in double
// precision: RMSNorm (input and weight), RoPE, grouped-query causal attention, SwiGLU and the
// cross-entropy loss. Each layer's output y is reduced to the scalar f = sum(R .* y) with a fixed
// random R, so the analytic gradient is backward(R).
#include <gtest/gtest.h>

#include <cstdio>

#include "model/attention.h"
#include "model/cross_entropy.h"
#include "model/embedding.h"
#include "model/error.h"
#include "model/rms_norm.h"
#include "model/rope.h"
#include "model/swiglu.h"
#include "training_test_util.h"

namespace {

using Mat = model::ActivationsT<double>;
using Vec = model::VectorT<double>;
using training_test::fill_random;
using training_test::gradient_error;
using training_test::kGradientTolerance;

void report(const char* what, double error) {
  std::printf("gradient check %-28s max relative error %.3g\n", what, error);
  EXPECT_LT(error, kGradientTolerance) << what;
}

TEST(LayerBackward, RmsNormInputAndWeight) {
  Mat x(8, 5), r(8, 5);
  Vec w(8);
  fill_random(x, 1, 2);
  fill_random(r, 2);
  fill_random(w, 3);
  const double eps = 1e-5;
  const auto f = [&] {
    Mat y;
    model::rms_norm_forward(x, w, eps, y);
    return r.cwiseProduct(y).sum();
  };
  Mat y, dx;
  model::RmsNormCacheT<double> cache;
  model::rms_norm_forward(x, w, eps, y, &cache);
  Vec dw = Vec::Zero(8);
  model::rms_norm_backward(x, w, cache, r, dx, &dw);
  report("rms_norm dx", gradient_error(x.data(), dx.data(), x.size(), f));
  report("rms_norm dweight", gradient_error(w.data(), dw.data(), w.size(), f));
}

TEST(LayerBackward, RmsNormRefusesMismatchedShapes) {
  Mat x(4, 2), dx;
  model::RmsNormCacheT<double> cache;
  cache.inv_rms = Vec::Ones(3);
  EXPECT_THROW(model::rms_norm_backward(x, Vec::Ones(4), cache, Mat::Zero(4, 2), dx), model::ModelError);
}

model::LlamaConfig rope_config() {
  model::LlamaConfig c;
  c.hidden_size = 8;
  c.num_attention_heads = 2;
  c.head_dim = 4;
  c.rope_theta = 10;  // large angles even at small positions
  return c;
}

TEST(LayerBackward, RopeIsTheTransposedRotation) {
  const model::RopeTable table(rope_config(), 4);
  const model::TokenBatch batch({{1, 2, 3, 4}, {5, 6}});
  Mat x(8, 6), r(8, 6);
  fill_random(x, 4);
  fill_random(r, 5);
  const auto f = [&] {
    Mat y = x;
    model::rope_forward(table, batch, 4, y);
    return r.cwiseProduct(y).sum();
  };
  Mat dx = r;
  model::rope_backward(table, batch, 4, dx);
  report("rope dx", gradient_error(x.data(), dx.data(), x.size(), f));

  // Backward undoes forward (the table's cos and sin are float, so up to 1e-7).
  model::Activations a = x.cast<float>();
  const model::Activations original = a;
  model::rope_forward(table, batch, 4, a);
  model::rope_backward(table, batch, 4, a);
  EXPECT_LT((a - original).cwiseAbs().maxCoeff(), 1e-6f);
}

TEST(LayerBackward, GroupedQueryCausalAttention) {
  // 4 query heads on 2 kv heads of width 3; three sequences, one of a single token.
  const model::AttentionShape shape{4, 2, 3};
  const model::TokenBatch batch({{1, 2, 3, 4, 5}, {6}, {7, 8, 9}});
  Mat q(12, 9), k(6, 9), v(6, 9), r(12, 9);
  fill_random(q, 6, 1.5);
  fill_random(k, 7, 1.5);
  fill_random(v, 8);
  fill_random(r, 9);
  const auto f = [&] {
    Mat out;
    model::attention_forward(q, k, v, batch, shape, out);
    return r.cwiseProduct(out).sum();
  };
  Mat out, dq, dk, dv;
  model::AttentionCacheT<double> cache;
  model::attention_forward(q, k, v, batch, shape, out, &cache);
  model::attention_backward(q, k, v, batch, shape, cache, r, dq, dk, dv);
  report("attention dq", gradient_error(q.data(), dq.data(), q.size(), f));
  report("attention dk (GQA sum)", gradient_error(k.data(), dk.data(), k.size(), f));
  report("attention dv (GQA sum)", gradient_error(v.data(), dv.data(), v.size(), f));
  // The causal mask: the last key of a sequence only influences its own last query, through
  // the softmax; a single-token sequence's query attends to its own key only, whose score does
  // not matter (softmax of one value), so its query and key get exactly 0.
  EXPECT_EQ(dq.col(5).cwiseAbs().maxCoeff(), 0);
  EXPECT_EQ(dk.col(5).cwiseAbs().maxCoeff(), 0);
  EXPECT_GT(dv.col(5).cwiseAbs().maxCoeff(), 0);
}

TEST(LayerBackward, AttentionBackwardRefusesAForeignCache) {
  const model::AttentionShape shape{2, 1, 2};
  Mat q = Mat::Ones(4, 3), k = Mat::Ones(2, 3), dq, dk, dv;
  model::AttentionCacheT<double> cache;  // empty
  EXPECT_THROW(model::attention_backward(q, k, k, model::TokenBatch({{1, 2, 3}}), shape, cache, q,
                                         dq, dk, dv),
               model::ModelError);
}

TEST(LayerBackward, SwiGlu) {
  Mat gate(6, 4), up(6, 4), r(6, 4);
  fill_random(gate, 10, 3);
  fill_random(up, 11);
  fill_random(r, 12);
  const auto f = [&] {
    Mat out;
    model::swiglu_forward(gate, up, out);
    return r.cwiseProduct(out).sum();
  };
  Mat dgate, dup;
  model::swiglu_backward(gate, up, r, dgate, dup);
  report("swiglu dgate", gradient_error(gate.data(), dgate.data(), gate.size(), f));
  report("swiglu dup", gradient_error(up.data(), dup.data(), up.size(), f));
}

TEST(LayerBackward, CrossEntropy) {
  // The single-token sequence and every last position predict nothing.
  const model::TokenBatch batch({{1, 6, 3}, {2}, {0, 4, 4, 5}});
  model::RowMatrixT<double> logits(8, 7);
  fill_random(logits, 13, 2);
  const auto f = [&] { return model::cross_entropy_forward<double>(logits, batch); };
  model::CrossEntropyCache cache;
  const double loss = model::cross_entropy_forward<double>(logits, batch, &cache);
  EXPECT_EQ(cache.predicted, 5);
  model::RowMatrixT<double> dlogits;
  model::cross_entropy_backward<double>(logits, batch, cache, 1.0, dlogits);
  report("cross_entropy dlogits", gradient_error(logits.data(), dlogits.data(), logits.size(), f));
  for (const int64_t row : {2, 3, 7}) EXPECT_EQ(dlogits.row(row).cwiseAbs().maxCoeff(), 0) << row;
  // Each predicting row sums to 0 (softmax minus one-hot) and dloss scales linearly.
  EXPECT_NEAR(dlogits.row(0).sum(), 0, 1e-15);
  model::RowMatrixT<double> scaled;
  model::cross_entropy_backward<double>(logits, batch, cache, 3.0, scaled);
  EXPECT_LT((scaled - 3 * dlogits).cwiseAbs().maxCoeff(), 1e-15);
  // The float path agrees with the double one.
  const model::Matrix logits_f = logits.cast<float>();
  model::CrossEntropyCache cache_f;
  EXPECT_NEAR(model::cross_entropy_forward(logits_f, batch, &cache_f), loss, 1e-6);
  model::Matrix dlogits_f;
  model::cross_entropy_backward(logits_f, batch, cache_f, 1.0, dlogits_f);
  EXPECT_LT((dlogits_f.cast<double>() - dlogits).cwiseAbs().maxCoeff(), 1e-7);
}

TEST(LayerBackward, FloatLayersAgreeWithTheirDoubleTwins) {
  Mat x(8, 3);
  fill_random(x, 14);
  const Vec w = Vec::Constant(8, 1.25);
  Mat yd;
  model::rms_norm_forward(x, w, 1e-6, yd);
  model::Activations yf;
  model::rms_norm_forward(model::Activations(x.cast<float>()), model::Vector(w.cast<float>()),
                          1e-6f, yf);
  EXPECT_LT((yf.cast<double>() - yd).cwiseAbs().maxCoeff(), 1e-6);
  // The embedding lookup converts the float table exactly.
  model::Matrix table(3, 2);
  table << 1.5f, 2, 3, 4, 5, 0.1f;
  const int32_t ids[] = {2, 0};
  Mat e;
  model::embedding_forward(table, ids, e);
  EXPECT_EQ(e(1, 0), static_cast<double>(0.1f));
  EXPECT_EQ(e(0, 1), 1.5);
}

}  // namespace
