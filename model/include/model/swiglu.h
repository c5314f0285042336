// The SwiGLU gate of Llama's MLP: act = silu(gate) * up, element-wise, where
// silu(g) = g / (1 + exp(-g)). The MLP is down_proj(act) with gate = gate_proj(x) and
// up = up_proj(x); those projections go through the LinearBackend, and the backward pass needs
// gate and up, which the caller keeps. Backward, with d = dL/dact and s = 1 / (1 + exp(-g)):
//   dL/dgate = d * up * silu'(gate),  silu'(g) = s * (1 + g * (1 - s))
//   dL/dup   = d * silu(gate)
#pragma once

#include <type_traits>

#include "model/activations.h"

namespace model {

// out = silu(gate) .* up; gate and up have the same shape (model::ModelError otherwise).
template <typename Scalar>
void swiglu_forward(const ActivationsT<Scalar>& gate, const ActivationsT<Scalar>& up,
                    ActivationsT<Scalar>& out);

// dgate and dup (resized like gate) from the forward's inputs and dact = dL/dout.
template <typename Scalar>
void swiglu_backward(const ActivationsT<Scalar>& gate, const ActivationsT<Scalar>& up,
                     const std::type_identity_t<ActivationsT<Scalar>>& dact,
                     std::type_identity_t<ActivationsT<Scalar>>& dgate,
                     std::type_identity_t<ActivationsT<Scalar>>& dup);

}  // namespace model
