#include "model/embedding.h"

namespace model {

template <typename Scalar>
void embedding_forward(const Matrix& table, std::span<const int32_t> tokens,
                       ActivationsT<Scalar>& x) {
  x.resize(table.cols(), static_cast<int64_t>(tokens.size()));
  for (size_t t = 0; t < tokens.size(); ++t) {
    x.col(static_cast<int64_t>(t)) = table.row(tokens[t]).transpose().template cast<Scalar>();
  }
}

template void embedding_forward<float>(const Matrix&, std::span<const int32_t>,
                                       ActivationsT<float>&);
template void embedding_forward<double>(const Matrix&, std::span<const int32_t>,
                                        ActivationsT<double>&);

}  // namespace model
