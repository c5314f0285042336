// Activations of a batch of tokens, laid out feature-major for the projections.
//
// A batch holds T tokens (all its sequences, concatenated). Its activations at one point of the
// network form a d x T float matrix whose column t is token t: Y = W * X then runs every
// projection over the whole batch at once, and each token's features are contiguous
// (column-major storage).
#pragma once

#include <Eigen/Core>

namespace model {

using Activations = Eigen::MatrixXf;

}  // namespace model
