// The SwiGLU gate of Llama's MLP: act = silu(gate) * up, element-wise, where
// silu(g) = g / (1 + exp(-g)). The MLP is down_proj(act) with gate = gate_proj(x) and
// up = up_proj(x); those projections go through the LinearBackend, and the backward pass needs
// gate and up, which the caller keeps.
#pragma once

#include "model/activations.h"

namespace model {

// out = silu(gate) .* up; gate and up have the same shape.
void swiglu_forward(const Activations& gate, const Activations& up, Activations& out);

}  // namespace model
