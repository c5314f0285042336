// RMSNorm as Hugging Face's LlamaRMSNorm computes it, in float32, one token (column) at a time:
//   inv_rms(t) = 1 / sqrt(mean_i x(i, t)^2 + eps)
//   y(i, t)    = weight(i) * (x(i, t) * inv_rms(t))
#pragma once

#include <Eigen/Core>

#include "model/activations.h"
#include "model/llama_weights.h"

namespace model {

// What the backward pass needs besides the input: 1 / rms of every token.
struct RmsNormCache {
  Eigen::VectorXf inv_rms;  // [T]
};

// y = RMSNorm(x) for x of d x T and a weight of d. `cache` (may be null) receives inv_rms.
void rms_norm_forward(const Activations& x, const Vector& weight, float eps, Activations& y,
                      RmsNormCache* cache = nullptr);

}  // namespace model
