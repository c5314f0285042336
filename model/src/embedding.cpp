#include "model/embedding.h"

#include <vector>

namespace model {

template <typename Scalar>
void embedding_forward(const Matrix& table, std::span<const int32_t> tokens,
                       ActivationsT<Scalar>& x) {
  x.resize(table.cols(), static_cast<int64_t>(tokens.size()));
  for (size_t t = 0; t < tokens.size(); ++t) {
    x.col(static_cast<int64_t>(t)) = table.row(tokens[t]).transpose().template cast<Scalar>();
  }
}

template <typename Scalar>
void embedding_forward(const LlamaWeights& weights, std::span<const int32_t> tokens,
                       ActivationsT<Scalar>& x) {
  if (weights.embed_tokens.size() > 0 || !weights.store) {
    return embedding_forward(weights.embed_tokens, tokens, x);
  }
  const int64_t v = weights.config.vocab_size, h = weights.config.hidden_size;
  x.resize(h, static_cast<int64_t>(tokens.size()));
  std::vector<float> row(static_cast<size_t>(h));
  for (size_t t = 0; t < tokens.size(); ++t) {
    weights.store->read_f32_rows("model.embed_tokens.weight", {v, h}, tokens[t], 1, row);
    for (int64_t i = 0; i < h; ++i) {
      x(i, static_cast<int64_t>(t)) = static_cast<Scalar>(row[static_cast<size_t>(i)]);
    }
  }
}

template void embedding_forward<float>(const LlamaWeights&, std::span<const int32_t>,
                                       ActivationsT<float>&);
template void embedding_forward<double>(const LlamaWeights&, std::span<const int32_t>,
                                        ActivationsT<double>&);
template void embedding_forward<float>(const Matrix&, std::span<const int32_t>,
                                       ActivationsT<float>&);
template void embedding_forward<double>(const Matrix&, std::span<const int32_t>,
                                        ActivationsT<double>&);

}  // namespace model
