#include "model/lora_branch.h"

#include <string>

#include "model/error.h"

namespace model {
namespace {

std::string shape(int64_t rows, int64_t cols) {
  return std::to_string(rows) + " x " + std::to_string(cols);
}

}  // namespace

template <typename Scalar>
void lora_forward(const LoraPairT<Scalar>& pair, std::type_identity_t<Scalar> scaling,
                  const ActivationsT<Scalar>& x, std::type_identity_t<ActivationsT<Scalar>>& y,
                  std::type_identity_t<ActivationsT<Scalar>>& ax) {
  if (pair.a.cols() != x.rows() || pair.b.cols() != pair.a.rows() || y.rows() != pair.b.rows() ||
      y.cols() != x.cols()) {
    throw ModelError("LoRA forward: A " + shape(pair.a.rows(), pair.a.cols()) + ", B " +
                shape(pair.b.rows(), pair.b.cols()) + ", x " + shape(x.rows(), x.cols()) +
                " and y " + shape(y.rows(), y.cols()) + " do not fit");
  }
  ax.noalias() = pair.a * x;
  y.noalias() += scaling * (pair.b * ax);
}

template <typename Scalar>
void lora_input_backward(const LoraPairT<Scalar>& pair, std::type_identity_t<Scalar> scaling,
                         const ActivationsT<Scalar>& g,
                         std::type_identity_t<ActivationsT<Scalar>>& dx) {
  if (pair.b.rows() != g.rows() || pair.a.rows() != pair.b.cols() || dx.rows() != pair.a.cols() ||
      dx.cols() != g.cols()) {
    throw ModelError("LoRA backward: A " + shape(pair.a.rows(), pair.a.cols()) + ", B " +
                shape(pair.b.rows(), pair.b.cols()) + ", g " + shape(g.rows(), g.cols()) +
                " and dx " + shape(dx.rows(), dx.cols()) + " do not fit");
  }
  const ActivationsT<Scalar> btg = pair.b.transpose() * g;
  dx.noalias() += scaling * (pair.a.transpose() * btg);
}

template <typename Scalar>
void lora_weight_backward(const LoraPairT<Scalar>& pair, std::type_identity_t<Scalar> scaling,
                          const ActivationsT<Scalar>& x,
                          const std::type_identity_t<ActivationsT<Scalar>>& ax,
                          const std::type_identity_t<ActivationsT<Scalar>>& g, int64_t begin,
                          int64_t count, std::type_identity_t<LoraPairT<Scalar>>& grad) {
  const int64_t rank = pair.b.cols();
  const bool shapes_fit =
      pair.b.rows() == g.rows() && ax.rows() == rank && x.cols() == g.cols() &&
      ax.cols() == g.cols() && grad.b.rows() == pair.b.rows() && grad.b.cols() == rank &&
      (grad.a.size() == 0 || (grad.a.rows() == rank && grad.a.cols() == x.rows()));
  if (!shapes_fit || begin < 0 || count < 0 || begin + count > g.cols()) {
    throw ModelError("LoRA weight gradient: B " + shape(pair.b.rows(), pair.b.cols()) + ", x " +
                shape(x.rows(), x.cols()) + ", A x " + shape(ax.rows(), ax.cols()) + ", g " +
                shape(g.rows(), g.cols()) + ", columns [" + std::to_string(begin) + ", " +
                std::to_string(begin + count) + ") do not fit");
  }
  const auto gc = g.middleCols(begin, count);
  grad.b.noalias() += scaling * (gc * ax.middleCols(begin, count).transpose());
  if (grad.a.size() != 0) {
    const ActivationsT<Scalar> btg = pair.b.transpose() * gc;
    grad.a.noalias() += scaling * (btg * x.middleCols(begin, count).transpose());
  }
}

template void lora_forward<float>(const LoraPairT<float>&, float, const ActivationsT<float>&,
                                  ActivationsT<float>&, ActivationsT<float>&);
template void lora_forward<double>(const LoraPairT<double>&, double, const ActivationsT<double>&,
                                   ActivationsT<double>&, ActivationsT<double>&);
template void lora_input_backward<float>(const LoraPairT<float>&, float, const ActivationsT<float>&,
                                         ActivationsT<float>&);
template void lora_input_backward<double>(const LoraPairT<double>&, double,
                                          const ActivationsT<double>&, ActivationsT<double>&);
template void lora_weight_backward<float>(const LoraPairT<float>&, float,
                                          const ActivationsT<float>&, const ActivationsT<float>&,
                                          const ActivationsT<float>&, int64_t, int64_t,
                                          LoraPairT<float>&);
template void lora_weight_backward<double>(const LoraPairT<double>&, double,
                                           const ActivationsT<double>&, const ActivationsT<double>&,
                                           const ActivationsT<double>&, int64_t, int64_t,
                                           LoraPairT<double>&);

}  // namespace model
