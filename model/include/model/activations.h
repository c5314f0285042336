// Activations of a batch of tokens, laid out feature-major for the projections.
//
// A batch holds T tokens (all its sequences, concatenated). Its activations at one point of the
// network form a d x T matrix whose column t is token t: Y = W * X then runs every projection
// over the whole batch at once, and each token's features are contiguous (column-major storage).
//
// The model computes in float32. Every layer (forward and backward) is also written for double,
// its numerical twin: the gradient checks compare the backward pass with finite differences in
// double precision, where they are accurate to about 1e-10. The `...T<Scalar>` names below are
// the scalar-generic types; the plain names are the float32 ones the model runs on.
#pragma once

#include <Eigen/Core>

namespace model {

// d x T activations (column-major: one token per column).
template <typename Scalar>
using ActivationsT = Eigen::Matrix<Scalar, Eigen::Dynamic, Eigen::Dynamic>;
using Activations = ActivationsT<float>;

// A row-major matrix: weights in the checkpoint's [d_out, d_in] order, and T x vocab logits.
template <typename Scalar>
using RowMatrixT = Eigen::Matrix<Scalar, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

template <typename Scalar>
using VectorT = Eigen::Matrix<Scalar, Eigen::Dynamic, 1>;

}  // namespace model
