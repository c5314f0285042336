#include "model/float_backend.h"

#include <oneapi/dnnl/dnnl.h>

#include <string>

#include "model/error.h"

namespace model {

namespace {

// C (m x n, row-major) = op(A) * op(B) with oneDNN's sgemm, which picks the CPU's widest vector
// instructions at run time (the project is built without -march, so Eigen would use SSE2 only).
void sgemm(char ta, char tb, int64_t m, int64_t n, int64_t k, const float* a, int64_t lda,
           const float* b, int64_t ldb, float* c, int64_t ldc) {
  if (m == 0 || n == 0) return;
  if (dnnl_sgemm(ta, tb, m, n, k, 1.0f, a, lda, b, ldb, 0.0f, c, ldc) != dnnl_success) {
    throw ModelError("float backend: sgemm failed");
  }
}

}  // namespace

FloatBackend::FloatBackend(std::shared_ptr<const LlamaWeights> weights)
    : weights_(std::move(weights)) {
  if (!weights_) throw ModelError("float backend: no weights");
}

void FloatBackend::forward(ProjectionId id, const Activations& x, Activations& y) {
  const Matrix& w = projection_weight(*weights_, id);
  if (x.rows() != w.cols()) {
    throw ModelError("projection " + projection_name(id) + ": input has " + std::to_string(x.rows()) +
                " features, the weight takes " + std::to_string(w.cols()));
  }
  y.resize(w.rows(), x.cols());
  // Column-major Y (d_out x T) is row-major Y^T = X^T W^T.
  sgemm('N', 'T', x.cols(), w.rows(), w.cols(), x.data(), w.cols(), w.data(), w.cols(), y.data(),
        w.rows());
}

void FloatBackend::backward(ProjectionId id, const Activations& g, Activations& dx) {
  const Matrix& w = projection_weight(*weights_, id);
  if (g.rows() != w.rows()) {
    throw ModelError("projection " + projection_name(id) + ": output gradient has " +
                std::to_string(g.rows()) + " features, the weight gives " +
                std::to_string(w.rows()));
  }
  dx.resize(w.cols(), g.cols());
  // Column-major dX (d_in x T) is row-major dX^T = G^T W.
  sgemm('N', 'N', g.cols(), w.cols(), w.rows(), g.data(), w.rows(), w.data(), w.cols(), dx.data(),
        w.cols());
}

}  // namespace model
