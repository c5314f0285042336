#include "model/swiglu.h"

#include <cmath>
#include <string>

#include "model/error.h"

namespace model {
namespace {

template <typename Scalar>
void check_same_shape(const char* what, const ActivationsT<Scalar>& a,
                      const ActivationsT<Scalar>& b) {
  if (a.rows() != b.rows() || a.cols() != b.cols()) {
    throw ModelError(std::string(what) + ": " + std::to_string(a.rows()) + " x " +
                std::to_string(a.cols()) + " and " + std::to_string(b.rows()) + " x " +
                std::to_string(b.cols()) + " differ");
  }
}

}  // namespace

template <typename Scalar>
void swiglu_forward(const ActivationsT<Scalar>& gate, const ActivationsT<Scalar>& up,
                    ActivationsT<Scalar>& out) {
  check_same_shape("swiglu (gate, up)", gate, up);
  out.resize(gate.rows(), gate.cols());
  const Scalar* g = gate.data();
  const Scalar* u = up.data();
  Scalar* o = out.data();
  const int64_t n = gate.size();
  for (int64_t i = 0; i < n; ++i) o[i] = g[i] / (Scalar(1) + std::exp(-g[i])) * u[i];
}

template <typename Scalar>
void swiglu_backward(const ActivationsT<Scalar>& gate, const ActivationsT<Scalar>& up,
                     const std::type_identity_t<ActivationsT<Scalar>>& dact,
                     std::type_identity_t<ActivationsT<Scalar>>& dgate,
                     std::type_identity_t<ActivationsT<Scalar>>& dup) {
  check_same_shape("swiglu backward (gate, up)", gate, up);
  check_same_shape("swiglu backward (gate, gradient)", gate, dact);
  dgate.resize(gate.rows(), gate.cols());
  dup.resize(gate.rows(), gate.cols());
  const Scalar* g = gate.data();
  const Scalar* u = up.data();
  const Scalar* d = dact.data();
  Scalar* dg = dgate.data();
  Scalar* du = dup.data();
  const int64_t n = gate.size();
  for (int64_t i = 0; i < n; ++i) {
    const Scalar sigmoid = Scalar(1) / (Scalar(1) + std::exp(-g[i]));
    const Scalar silu = g[i] * sigmoid;
    const Scalar silu_grad = sigmoid * (Scalar(1) + g[i] * (Scalar(1) - sigmoid));
    dg[i] = d[i] * u[i] * silu_grad;
    du[i] = d[i] * silu;
  }
}

template void swiglu_forward<float>(const ActivationsT<float>&, const ActivationsT<float>&,
                                    ActivationsT<float>&);
template void swiglu_forward<double>(const ActivationsT<double>&, const ActivationsT<double>&,
                                     ActivationsT<double>&);
template void swiglu_backward<float>(const ActivationsT<float>&, const ActivationsT<float>&,
                                     const ActivationsT<float>&, ActivationsT<float>&,
                                     ActivationsT<float>&);
template void swiglu_backward<double>(const ActivationsT<double>&, const ActivationsT<double>&,
                                      const ActivationsT<double>&, ActivationsT<double>&,
                                      ActivationsT<double>&);

}  // namespace model
