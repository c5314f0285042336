// LinearBackend: the one door through which every frozen projection of the model is computed.
//
// The model never multiplies by a base weight itself: the q, k, v, o, gate, up and down
// projections of every layer and the LM head all call forward() (y = W x) and, in training,
// backward() (dx = W^T g, the input gradient of the frozen projection). Implementations:
//   FloatBackend      float32 Eigen GEMMs (float_backend.h), the reference
//   DoubleBackend     the same in double (double_backend.h), for gradient checks
//   Int8Backend       the exact int8 products a worker computes, in plaintext (int8_backend.h)
//   EncryptedBackend  the same products through RLWE encryption (encrypted_backend.h)
// A remote backend (requests to FHE workers) comes with the protocol.
#pragma once

#include <string>
#include <string_view>

#include "model/activations.h"
#include "model/error.h"
#include "model/projection.h"

namespace model {

template <typename Scalar>
class LinearBackendT {
 public:
  virtual ~LinearBackendT() = default;

  // y = W * x for the projection `id`: x is d_in x T, y is resized to d_out x T (column t stays
  // token t). Throws model::Error for a wrong d_in or a product the backend refuses.
  virtual void forward(ProjectionId id, const ActivationsT<Scalar>& x, ActivationsT<Scalar>& y) = 0;

  // dx = W^T * g for the projection `id`: g (the gradient of the loss with respect to the
  // projection's output) is d_out x T, dx is resized to d_in x T. Throws model::Error for a
  // wrong d_out or a product the backend refuses. Backends made for inference only may keep
  // this default, which refuses.
  virtual void backward(ProjectionId id, const ActivationsT<Scalar>& g, ActivationsT<Scalar>& dx) {
    (void)g;
    (void)dx;
    throw Error("the " + std::string(name()) + " backend has no backward product (projection " +
                projection_name(id) + ")");
  }

  // "float", "double", "int8", "encrypted".
  virtual std::string_view name() const = 0;
};

using LinearBackend = LinearBackendT<float>;

}  // namespace model
