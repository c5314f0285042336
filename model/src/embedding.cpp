#include "model/embedding.h"

namespace model {

void embedding_forward(const Matrix& table, std::span<const int32_t> tokens, Activations& x) {
  x.resize(table.cols(), static_cast<int64_t>(tokens.size()));
  for (size_t t = 0; t < tokens.size(); ++t) x.col(static_cast<int64_t>(t)) = table.row(tokens[t]);
}

}  // namespace model
