#include "model/attention.h"

#include <cmath>
#include <string>

#include "model/error.h"

namespace model {

void causal_softmax_columns(Eigen::MatrixXf& scores) {
  const int64_t n = scores.rows();
  for (int64_t j = 0; j < scores.cols(); ++j) {
    const int64_t visible = std::min(j + 1, n);
    auto col = scores.col(j);
    const float max = col.head(visible).maxCoeff();
    float sum = 0;
    for (int64_t i = 0; i < visible; ++i) {
      col(i) = std::exp(col(i) - max);
      sum += col(i);
    }
    col.head(visible) /= sum;
    col.tail(n - visible).setZero();
  }
}

void attention_forward(const Activations& q, const Activations& k, const Activations& v,
                       const TokenBatch& batch, const AttentionShape& shape, Activations& out,
                       AttentionCache* cache) {
  const int64_t hd = shape.head_dim;
  const int64_t tokens = batch.total_tokens();
  if (shape.kv_heads <= 0 || shape.heads % shape.kv_heads != 0 || q.rows() != shape.heads * hd ||
      k.rows() != shape.kv_heads * hd || v.rows() != k.rows() || q.cols() != tokens ||
      k.cols() != tokens || v.cols() != tokens) {
    throw Error("attention: q " + std::to_string(q.rows()) + " x " + std::to_string(q.cols()) +
                ", k " + std::to_string(k.rows()) + " x " + std::to_string(k.cols()) +
                " do not fit " + std::to_string(shape.heads) + " heads, " +
                std::to_string(shape.kv_heads) + " kv heads of " + std::to_string(hd) + " and " +
                std::to_string(tokens) + " tokens");
  }
  const int64_t group = shape.heads / shape.kv_heads;
  const int64_t sequences = batch.sequence_count();
  // transformers multiplies the float32 scores by the Python float head_dim ** -0.5.
  const auto scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(hd)));
  out.resize(q.rows(), tokens);
  if (cache) cache->probs.assign(static_cast<size_t>(sequences * shape.heads), {});

  const int64_t jobs = sequences * shape.heads;
#pragma omp parallel for schedule(dynamic)
  for (int64_t job = 0; job < jobs; ++job) {
    const SequenceSpan span = batch.spans()[job / shape.heads];
    const int64_t h = job % shape.heads;
    const int64_t g = h / group;
    const auto qh = q.block(h * hd, span.begin, hd, span.length);
    const auto kg = k.block(g * hd, span.begin, hd, span.length);
    const auto vg = v.block(g * hd, span.begin, hd, span.length);
    Eigen::MatrixXf probs(span.length, span.length);
    probs.noalias() = kg.transpose() * qh;
    probs *= scale;
    causal_softmax_columns(probs);
    out.block(h * hd, span.begin, hd, span.length).noalias() = vg * probs;
    if (cache) cache->probs[job] = std::move(probs);
  }
}

}  // namespace model
