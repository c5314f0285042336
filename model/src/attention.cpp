#include "model/attention.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "model/error.h"

namespace model {
namespace {

template <typename Scalar>
void check_shapes(const char* what, const ActivationsT<Scalar>& q, const ActivationsT<Scalar>& k,
                  const ActivationsT<Scalar>& v, const TokenBatch& batch,
                  const AttentionShape& shape) {
  const int64_t hd = shape.head_dim;
  const int64_t tokens = batch.total_tokens();
  if (shape.kv_heads <= 0 || shape.heads % shape.kv_heads != 0 || q.rows() != shape.heads * hd ||
      k.rows() != shape.kv_heads * hd || v.rows() != k.rows() || q.cols() != tokens ||
      k.cols() != tokens || v.cols() != tokens) {
    throw ModelError(std::string(what) + ": q " + std::to_string(q.rows()) + " x " +
                std::to_string(q.cols()) + ", k " + std::to_string(k.rows()) + " x " +
                std::to_string(k.cols()) + " do not fit " + std::to_string(shape.heads) +
                " heads, " + std::to_string(shape.kv_heads) + " kv heads of " + std::to_string(hd) +
                " and " + std::to_string(tokens) + " tokens");
  }
}

// transformers multiplies the scores by the Python float head_dim ** -0.5.
template <typename Scalar>
Scalar score_scale(int64_t head_dim) {
  return static_cast<Scalar>(1.0 / std::sqrt(static_cast<double>(head_dim)));
}

}  // namespace

template <typename Scalar>
void causal_softmax_columns(ActivationsT<Scalar>& scores) {
  const int64_t n = scores.rows();
  for (int64_t j = 0; j < scores.cols(); ++j) {
    const int64_t visible = std::min(j + 1, n);
    auto col = scores.col(j);
    const Scalar max = col.head(visible).maxCoeff();
    Scalar sum = 0;
    for (int64_t i = 0; i < visible; ++i) {
      col(i) = std::exp(col(i) - max);
      sum += col(i);
    }
    col.head(visible) /= sum;
    col.tail(n - visible).setZero();
  }
}

template <typename Scalar>
void softmax_columns_backward(const ActivationsT<Scalar>& probs,
                              std::type_identity_t<ActivationsT<Scalar>>& grad) {
  if (grad.rows() != probs.rows() || grad.cols() != probs.cols()) {
    throw ModelError("softmax backward: gradient and probabilities differ in shape");
  }
  for (int64_t j = 0; j < probs.cols(); ++j) {
    const Scalar dot = probs.col(j).dot(grad.col(j));
    grad.col(j).array() -= dot;
    grad.col(j) = grad.col(j).cwiseProduct(probs.col(j));
  }
}

template <typename Scalar>
void attention_forward(const ActivationsT<Scalar>& q, const ActivationsT<Scalar>& k,
                       const ActivationsT<Scalar>& v, const TokenBatch& batch,
                       const AttentionShape& shape, ActivationsT<Scalar>& out,
                       std::type_identity_t<AttentionCacheT<Scalar>>* cache) {
  check_shapes("attention", q, k, v, batch, shape);
  const int64_t hd = shape.head_dim;
  const int64_t group = shape.heads / shape.kv_heads;
  const int64_t sequences = batch.sequence_count();
  const Scalar scale = score_scale<Scalar>(hd);
  out.resize(q.rows(), batch.total_tokens());
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
    ActivationsT<Scalar> probs(span.length, span.length);
    probs.noalias() = kg.transpose() * qh;
    probs *= scale;
    causal_softmax_columns(probs);
    out.block(h * hd, span.begin, hd, span.length).noalias() = vg * probs;
    if (cache) cache->probs[job] = std::move(probs);
  }
}

template <typename Scalar>
void attention_backward(const ActivationsT<Scalar>& q, const ActivationsT<Scalar>& k,
                        const ActivationsT<Scalar>& v, const TokenBatch& batch,
                        const AttentionShape& shape,
                        const std::type_identity_t<AttentionCacheT<Scalar>>& cache,
                        const std::type_identity_t<ActivationsT<Scalar>>& dout,
                        std::type_identity_t<ActivationsT<Scalar>>& dq,
                        std::type_identity_t<ActivationsT<Scalar>>& dk,
                        std::type_identity_t<ActivationsT<Scalar>>& dv) {
  check_shapes("attention backward", q, k, v, batch, shape);
  const int64_t hd = shape.head_dim;
  const int64_t group = shape.heads / shape.kv_heads;
  const int64_t sequences = batch.sequence_count();
  if (dout.rows() != q.rows() || dout.cols() != q.cols() ||
      static_cast<int64_t>(cache.probs.size()) != sequences * shape.heads) {
    throw ModelError("attention backward: the output gradient or the cache does not fit the batch");
  }
  for (int64_t job = 0; job < sequences * shape.heads; ++job) {
    const int64_t length = batch.spans()[job / shape.heads].length;
    if (cache.probs[job].rows() != length || cache.probs[job].cols() != length) {
      throw ModelError("attention backward: the cache does not come from this batch");
    }
  }
  const Scalar scale = score_scale<Scalar>(hd);
  dq.resize(q.rows(), q.cols());
  dk.setZero(k.rows(), k.cols());
  dv.setZero(v.rows(), v.cols());

  // One job per (sequence, kv head): it alone writes that kv head's dK and dV columns.
  const int64_t jobs = sequences * shape.kv_heads;
#pragma omp parallel for schedule(dynamic)
  for (int64_t job = 0; job < jobs; ++job) {
    const int64_t s = job / shape.kv_heads;
    const SequenceSpan span = batch.spans()[s];
    const int64_t g = job % shape.kv_heads;
    const auto kg = k.block(g * hd, span.begin, hd, span.length);
    const auto vg = v.block(g * hd, span.begin, hd, span.length);
    auto dkg = dk.block(g * hd, span.begin, hd, span.length);
    auto dvg = dv.block(g * hd, span.begin, hd, span.length);
    ActivationsT<Scalar> ds(span.length, span.length);
    for (int64_t h = g * group; h < (g + 1) * group; ++h) {
      const ActivationsT<Scalar>& probs = cache.probs[s * shape.heads + h];
      const auto qh = q.block(h * hd, span.begin, hd, span.length);
      const auto doh = dout.block(h * hd, span.begin, hd, span.length);
      dvg.noalias() += doh * probs.transpose();
      ds.noalias() = vg.transpose() * doh;  // dL/dP
      softmax_columns_backward(probs, ds);  // dL/d(scaled scores)
      ds *= scale;                          // dL/d(K^T Q)
      dq.block(h * hd, span.begin, hd, span.length).noalias() = kg * ds;
      dkg.noalias() += qh * ds.transpose();
    }
  }
}

template void causal_softmax_columns<float>(ActivationsT<float>&);
template void causal_softmax_columns<double>(ActivationsT<double>&);
template void softmax_columns_backward<float>(const ActivationsT<float>&, ActivationsT<float>&);
template void softmax_columns_backward<double>(const ActivationsT<double>&, ActivationsT<double>&);
template void attention_forward<float>(const ActivationsT<float>&, const ActivationsT<float>&,
                                       const ActivationsT<float>&, const TokenBatch&,
                                       const AttentionShape&, ActivationsT<float>&,
                                       AttentionCacheT<float>*);
template void attention_forward<double>(const ActivationsT<double>&, const ActivationsT<double>&,
                                        const ActivationsT<double>&, const TokenBatch&,
                                        const AttentionShape&, ActivationsT<double>&,
                                        AttentionCacheT<double>*);
template void attention_backward<float>(const ActivationsT<float>&, const ActivationsT<float>&,
                                        const ActivationsT<float>&, const TokenBatch&,
                                        const AttentionShape&, const AttentionCacheT<float>&,
                                        const ActivationsT<float>&, ActivationsT<float>&,
                                        ActivationsT<float>&, ActivationsT<float>&);
template void attention_backward<double>(const ActivationsT<double>&, const ActivationsT<double>&,
                                         const ActivationsT<double>&, const TokenBatch&,
                                         const AttentionShape&, const AttentionCacheT<double>&,
                                         const ActivationsT<double>&, ActivationsT<double>&,
                                         ActivationsT<double>&, ActivationsT<double>&);

}  // namespace model
