#include "model/rms_norm.h"

#include <cmath>
#include <string>

#include "model/error.h"

namespace model {

template <typename Scalar>
void rms_norm_forward(const ActivationsT<Scalar>& x,
                      const std::type_identity_t<VectorT<Scalar>>& weight,
                      std::type_identity_t<Scalar> eps, ActivationsT<Scalar>& y,
                      std::type_identity_t<RmsNormCacheT<Scalar>>* cache) {
  const int64_t d = x.rows();
  const int64_t tokens = x.cols();
  if (weight.size() != d) {
    throw ModelError("rms_norm: weight of " + std::to_string(weight.size()) + " for " +
                std::to_string(d) + " features");
  }
  y.resize(d, tokens);
  if (cache) cache->inv_rms.resize(tokens);
  for (int64_t t = 0; t < tokens; ++t) {
    const Scalar mean_square = x.col(t).squaredNorm() / static_cast<Scalar>(d);
    const Scalar inv_rms = Scalar(1) / std::sqrt(mean_square + eps);
    y.col(t) = weight.cwiseProduct(x.col(t) * inv_rms);
    if (cache) cache->inv_rms(t) = inv_rms;
  }
}

template <typename Scalar>
void rms_norm_backward(const ActivationsT<Scalar>& x,
                       const std::type_identity_t<VectorT<Scalar>>& weight,
                       const std::type_identity_t<RmsNormCacheT<Scalar>>& cache,
                       const std::type_identity_t<ActivationsT<Scalar>>& dy,
                       std::type_identity_t<ActivationsT<Scalar>>& dx,
                       std::type_identity_t<VectorT<Scalar>>* dweight) {
  const int64_t d = x.rows();
  const int64_t tokens = x.cols();
  if (weight.size() != d || cache.inv_rms.size() != tokens || dy.rows() != d ||
      dy.cols() != tokens || (dweight && dweight->size() != d)) {
    throw ModelError("rms_norm backward: input " + std::to_string(d) + " x " + std::to_string(tokens) +
                ", gradient " + std::to_string(dy.rows()) + " x " + std::to_string(dy.cols()) +
                ", weight " + std::to_string(weight.size()) + " and cache of " +
                std::to_string(cache.inv_rms.size()) + " tokens disagree");
  }
  dx.resize(d, tokens);
  for (int64_t t = 0; t < tokens; ++t) {
    const Scalar r = cache.inv_rms(t);
    // wg = weight .* g: the gradient with respect to the normalised x * inv_rms.
    const VectorT<Scalar> wg = weight.cwiseProduct(dy.col(t));
    const Scalar dot = wg.dot(x.col(t));
    dx.col(t) = r * wg - (r * r * r * dot / static_cast<Scalar>(d)) * x.col(t);
    if (dweight) *dweight += dy.col(t).cwiseProduct(x.col(t)) * r;
  }
}

template void rms_norm_forward<float>(const ActivationsT<float>&, const VectorT<float>&, float,
                                      ActivationsT<float>&, RmsNormCacheT<float>*);
template void rms_norm_forward<double>(const ActivationsT<double>&, const VectorT<double>&, double,
                                       ActivationsT<double>&, RmsNormCacheT<double>*);
template void rms_norm_backward<float>(const ActivationsT<float>&, const VectorT<float>&,
                                       const RmsNormCacheT<float>&, const ActivationsT<float>&,
                                       ActivationsT<float>&, VectorT<float>*);
template void rms_norm_backward<double>(const ActivationsT<double>&, const VectorT<double>&,
                                        const RmsNormCacheT<double>&, const ActivationsT<double>&,
                                        ActivationsT<double>&, VectorT<double>*);

}  // namespace model
