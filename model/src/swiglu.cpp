#include "model/swiglu.h"

#include <cmath>
#include <string>

#include "model/error.h"

namespace model {

void swiglu_forward(const Activations& gate, const Activations& up, Activations& out) {
  if (gate.rows() != up.rows() || gate.cols() != up.cols()) {
    throw Error("swiglu: gate " + std::to_string(gate.rows()) + " x " +
                std::to_string(gate.cols()) + " and up " + std::to_string(up.rows()) + " x " +
                std::to_string(up.cols()) + " differ");
  }
  out.resize(gate.rows(), gate.cols());
  const float* g = gate.data();
  const float* u = up.data();
  float* o = out.data();
  const int64_t n = gate.size();
  for (int64_t i = 0; i < n; ++i) o[i] = g[i] / (1.0f + std::exp(-g[i])) * u[i];
}

}  // namespace model
