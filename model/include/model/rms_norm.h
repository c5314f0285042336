// RMSNorm as Hugging Face's LlamaRMSNorm computes it, one token (column) at a time:
//   inv_rms(t) = 1 / sqrt(mean_i x(i, t)^2 + eps)
//   y(i, t)    = weight(i) * (x(i, t) * inv_rms(t))
// and its backward pass, with g = dL/dy:
//   dL/dx(i, t) = inv_rms(t) * weight(i) * g(i, t)
//                 - inv_rms(t)^3 / d * x(i, t) * sum_j weight(j) * g(j, t) * x(j, t)
//   dL/dweight(i) = sum_t g(i, t) * x(i, t) * inv_rms(t)
// Scalar is float (the model) or double (its twin for gradient checks).
#pragma once

#include <type_traits>

#include "model/activations.h"
#include "model/llama_weights.h"  // Vector, the float32 weight vector

namespace model {

// What the backward pass needs besides the input: 1 / rms of every token.
template <typename Scalar>
struct RmsNormCacheT {
  VectorT<Scalar> inv_rms;  // [T]
};
using RmsNormCache = RmsNormCacheT<float>;

// y = RMSNorm(x) for x of d x T and a weight of d. `cache` (may be null) receives inv_rms.
template <typename Scalar>
void rms_norm_forward(const ActivationsT<Scalar>& x,
                      const std::type_identity_t<VectorT<Scalar>>& weight,
                      std::type_identity_t<Scalar> eps, ActivationsT<Scalar>& y,
                      std::type_identity_t<RmsNormCacheT<Scalar>>* cache = nullptr);

// dx (d x T) = dL/dx from the forward's input x, its cache and dy = dL/dy. When `dweight` is
// not null, dL/dweight is added to it (it must hold d values); the model's norms are frozen, so
// it only passes null. Throws model::ModelError when the shapes disagree.
template <typename Scalar>
void rms_norm_backward(const ActivationsT<Scalar>& x,
                       const std::type_identity_t<VectorT<Scalar>>& weight,
                       const std::type_identity_t<RmsNormCacheT<Scalar>>& cache,
                       const std::type_identity_t<ActivationsT<Scalar>>& dy,
                       std::type_identity_t<ActivationsT<Scalar>>& dx,
                       std::type_identity_t<VectorT<Scalar>>* dweight = nullptr);

}  // namespace model
