#include "model/double_backend.h"

#include <string>

#include "model/error.h"

namespace model {

DoubleBackend::DoubleBackend(const LlamaWeights& weights) : config_(weights.config) {
  for (const ProjectionId id : llama_projections(config_)) {
    weights_.push_back(projection_weight(weights, id).cast<double>());
  }
}

const RowMatrixT<double>& DoubleBackend::weight(ProjectionId id) const {
  return weights_[projection_index(config_, id)];
}

void DoubleBackend::forward(ProjectionId id, const ActivationsT<double>& x,
                            ActivationsT<double>& y) {
  const RowMatrixT<double>& w = weight(id);
  if (x.rows() != w.cols()) {
    throw ModelError("projection " + projection_name(id) + ": input has " + std::to_string(x.rows()) +
                " features, the weight takes " + std::to_string(w.cols()));
  }
  y.resize(w.rows(), x.cols());
  y.noalias() = w * x;
}

void DoubleBackend::backward(ProjectionId id, const ActivationsT<double>& g,
                             ActivationsT<double>& dx) {
  const RowMatrixT<double>& w = weight(id);
  if (g.rows() != w.rows()) {
    throw ModelError("projection " + projection_name(id) + ": output gradient has " +
                std::to_string(g.rows()) + " features, the weight gives " +
                std::to_string(w.rows()));
  }
  dx.resize(w.cols(), g.cols());
  dx.noalias() = w.transpose() * g;
}

}  // namespace model
