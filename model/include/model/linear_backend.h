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
//
// Groups: a decoder layer's q, k and v projections read the same input, and so do gate and up;
// in the backward pass their input gradients are summed. forward_group() and backward_group()
// hand such a group to the backend at once, so that a backend with a per-call cost (the
// encrypted ones: one encryption per input, one decryption per result) pays it once per group.
// The defaults loop over forward() and backward().
#pragma once

#include <span>
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
  // token t). Throws model::ModelError for a wrong d_in or a product the backend refuses.
  virtual void forward(ProjectionId id, const ActivationsT<Scalar>& x, ActivationsT<Scalar>& y) = 0;

  // dx = W^T * g for the projection `id`: g (the gradient of the loss with respect to the
  // projection's output) is d_out x T, dx is resized to d_in x T. Throws model::ModelError for a
  // wrong d_out or a product the backend refuses. Backends made for inference only may keep
  // this default, which refuses.
  virtual void backward(ProjectionId id, const ActivationsT<Scalar>& g, ActivationsT<Scalar>& dx) {
    (void)g;
    (void)dx;
    throw ModelError("the " + std::string(name()) +
                     " backend has no backward product (projection " + projection_name(id) + ")");
  }

  // ys[j] = W_j * x for every projection ids[j] (all with the same d_in); ys.size() ==
  // ids.size() and every ys[j] is distinct from x. A backend's group results equal its separate
  // forward() results bit for bit. Throws model::ModelError like forward().
  virtual void forward_group(std::span<const ProjectionId> ids, const ActivationsT<Scalar>& x,
                             std::span<ActivationsT<Scalar>* const> ys) {
    check_group(ids.size(), ys.size());
    for (size_t j = 0; j < ids.size(); ++j) forward(ids[j], x, *ys[j]);
  }

  // dx = sum_j W_j^T * gs[j] for the projections ids[j] (all with the same d_in; gs[j] is
  // d_out_j x T), resized to d_in x T. The default sums the backward() results in float, in
  // list order; an int8 backend instead treats the group as one stacked matrix (int8_backend.h),
  // which rounds once. Throws model::ModelError like backward().
  virtual void backward_group(std::span<const ProjectionId> ids,
                              std::span<const ActivationsT<Scalar>* const> gs,
                              ActivationsT<Scalar>& dx) {
    check_group(ids.size(), gs.size());
    backward(ids[0], *gs[0], dx);
    ActivationsT<Scalar> part;
    for (size_t j = 1; j < ids.size(); ++j) {
      backward(ids[j], *gs[j], part);
      if (part.rows() != dx.rows() || part.cols() != dx.cols()) {
        throw ModelError("projection group: " + projection_name(ids[j]) +
                         " has another input width than " + projection_name(ids[0]));
      }
      dx += part;
    }
  }

  // "float", "double", "int8", "encrypted".
  virtual std::string_view name() const = 0;

 protected:
  // Throws model::ModelError for an empty group or one with as many projections as tensors.
  static void check_group(size_t ids, size_t tensors) {
    if (ids == 0 || ids != tensors) {
      throw ModelError("projection group: " + std::to_string(ids) + " projections for " +
                       std::to_string(tensors) + " tensors");
    }
  }
};

using LinearBackend = LinearBackendT<float>;

}  // namespace model
