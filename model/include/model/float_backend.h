// FloatBackend: every projection as a float32 Eigen GEMM with the loaded weights, forward
// (y = W x) and backward (dx = W^T g).
#pragma once

#include <memory>

#include "model/linear_backend.h"
#include "model/llama_weights.h"

namespace model {

class FloatBackend : public LinearBackend {
 public:
  explicit FloatBackend(std::shared_ptr<const LlamaWeights> weights);

  void forward(ProjectionId id, const Activations& x, Activations& y) override;
  void backward(ProjectionId id, const Activations& g, Activations& dx) override;
  std::string_view name() const override { return "float"; }

 private:
  std::shared_ptr<const LlamaWeights> weights_;
};

}  // namespace model
