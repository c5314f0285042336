// DoubleBackend: the float backend's twin in double precision, for gradient checks.
//
// The float32 weights are converted to double once (exactly); forward is y = W x and backward
// dx = W^T g, both in double. With it, LlamaModelT<double> computes the same function as the
// float model with about 1e-16 relative rounding instead of 1e-7, so central finite differences
// of the loss can check the backward pass to 1e-9 or better.
#pragma once

#include <memory>
#include <vector>

#include "model/linear_backend.h"
#include "model/llama_weights.h"

namespace model {

class DoubleBackend : public LinearBackendT<double> {
 public:
  explicit DoubleBackend(const LlamaWeights& weights);

  void forward(ProjectionId id, const ActivationsT<double>& x, ActivationsT<double>& y) override;
  void backward(ProjectionId id, const ActivationsT<double>& g, ActivationsT<double>& dx) override;
  std::string_view name() const override { return "double"; }

 private:
  const RowMatrixT<double>& weight(ProjectionId id) const;

  LlamaConfig config_;
  std::vector<RowMatrixT<double>> weights_;  // indexed by projection_index
};

}  // namespace model
