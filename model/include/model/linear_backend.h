// LinearBackend: the one door through which every frozen projection of the model is computed.
//
// The model never multiplies by a base weight itself: the q, k, v, o, gate, up and down
// projections of every layer and the LM head all call forward(). Implementations:
//   FloatBackend      float32 Eigen GEMM (float_backend.h), the reference
//   Int8Backend       the exact int8 product a worker computes, in plaintext (int8_backend.h)
//   EncryptedBackend  the same product through RLWE encryption (encrypted_backend.h)
// A remote backend (requests to FHE workers) comes with the protocol. The backward product
// W^T * G, for training, will be added to this interface alongside forward().
#pragma once

#include <string_view>

#include "model/activations.h"
#include "model/projection.h"

namespace model {

class LinearBackend {
 public:
  virtual ~LinearBackend() = default;

  // y = W * x for the projection `id`: x is d_in x T, y is resized to d_out x T (column t stays
  // token t). Throws model::Error for a wrong d_in or a product the backend refuses.
  virtual void forward(ProjectionId id, const Activations& x, Activations& y) = 0;

  // "float", "int8", "encrypted".
  virtual std::string_view name() const = 0;
};

}  // namespace model
