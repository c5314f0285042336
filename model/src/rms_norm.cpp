#include "model/rms_norm.h"

#include <cmath>

namespace model {

void rms_norm_forward(const Activations& x, const Vector& weight, float eps, Activations& y,
                      RmsNormCache* cache) {
  const int64_t d = x.rows();
  const int64_t tokens = x.cols();
  y.resize(d, tokens);
  if (cache) cache->inv_rms.resize(tokens);
  for (int64_t t = 0; t < tokens; ++t) {
    const float mean_square = x.col(t).squaredNorm() / static_cast<float>(d);
    const float inv_rms = 1.0f / std::sqrt(mean_square + eps);
    y.col(t) = weight.cwiseProduct(x.col(t) * inv_rms);
    if (cache) cache->inv_rms(t) = inv_rms;
  }
}

}  // namespace model
