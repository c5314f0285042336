#include "model/float_backend.h"

#include <string>

#include "model/error.h"

namespace model {

FloatBackend::FloatBackend(std::shared_ptr<const LlamaWeights> weights)
    : weights_(std::move(weights)) {
  if (!weights_) throw Error("float backend: no weights");
}

void FloatBackend::forward(ProjectionId id, const Activations& x, Activations& y) {
  const Matrix& w = projection_weight(*weights_, id);
  if (x.rows() != w.cols()) {
    throw Error("projection " + projection_name(id) + ": input has " + std::to_string(x.rows()) +
                " features, the weight takes " + std::to_string(w.cols()));
  }
  y.resize(w.rows(), x.cols());
  y.noalias() = w * x;
}

void FloatBackend::backward(ProjectionId id, const Activations& g, Activations& dx) {
  const Matrix& w = projection_weight(*weights_, id);
  if (g.rows() != w.rows()) {
    throw Error("projection " + projection_name(id) + ": output gradient has " +
                std::to_string(g.rows()) + " features, the weight gives " +
                std::to_string(w.rows()));
  }
  dx.resize(w.cols(), g.cols());
  dx.noalias() = w.transpose() * g;
}

}  // namespace model
