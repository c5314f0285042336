// The low-rank branch of one adapted projection, forward and backward (llm.c style, over the
// activations of a whole batch):
//   forward   y += s * B (A x),  s = alpha / rank,  keeping ax = A x (rank x T)
//   backward  dx += s * A^T (B^T g)                 (the branch's share of the input gradient)
//             dB += s * g ax^T,  dA += s * (B^T g) x^T
// where g = dL/dy. The frozen part W x and its W^T g go through the LinearBackend; the branch is
// computed here, in Scalar, on the participant.
//
// Per-example gradients: every column of x, ax and g is one token, and the weight gradients are
// sums of per-token outer products, so restricting them to one sequence's columns gives that
// sequence's share of the batch gradient; the shares of all sequences sum to it.
#pragma once

#include <cstdint>
#include <type_traits>

#include "model/activations.h"
#include "model/lora_params.h"

namespace model {

// y (d_out x T, already holding W x) += s * B (A x); ax receives A x. Throws model::ModelError when
// the shapes disagree.
template <typename Scalar>
void lora_forward(const LoraPairT<Scalar>& pair, std::type_identity_t<Scalar> scaling,
                  const ActivationsT<Scalar>& x, std::type_identity_t<ActivationsT<Scalar>>& y,
                  std::type_identity_t<ActivationsT<Scalar>>& ax);

// dx (d_in x T, already holding W^T g) += s * A^T (B^T g).
template <typename Scalar>
void lora_input_backward(const LoraPairT<Scalar>& pair, std::type_identity_t<Scalar> scaling,
                         const ActivationsT<Scalar>& g,
                         std::type_identity_t<ActivationsT<Scalar>>& dx);

// Adds the weight gradients of the columns [begin, begin + count) to grad: grad.b (d_out x rank)
// += s * g ax^T, and grad.a (rank x d_in) += s * (B^T g) x^T unless grad.a is empty (A frozen).
// x, ax and g are the forward's input, its A x and dL/dy. Throws model::ModelError when the shapes
// or the column range disagree.
template <typename Scalar>
void lora_weight_backward(const LoraPairT<Scalar>& pair, std::type_identity_t<Scalar> scaling,
                          const ActivationsT<Scalar>& x,
                          const std::type_identity_t<ActivationsT<Scalar>>& ax,
                          const std::type_identity_t<ActivationsT<Scalar>>& g, int64_t begin,
                          int64_t count, std::type_identity_t<LoraPairT<Scalar>>& grad);

}  // namespace model
