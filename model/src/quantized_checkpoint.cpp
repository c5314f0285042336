#include "model/quantized_checkpoint.h"

#include <algorithm>
#include <vector>

#include "model/error.h"
#include "model/llama_layout.h"

namespace model {

std::string projection_tensor_name(const LlamaConfig& config, ProjectionId id) {
  if (id.kind == ProjectionKind::kLmHead) {
    return config.tie_word_embeddings ? "model.embed_tokens.weight" : "lm_head.weight";
  }
  if (id.layer < 0 || id.layer >= config.num_hidden_layers) {
    throw ModelError("projection " + projection_name(id) + ": the model has " +
                std::to_string(config.num_hidden_layers) + " layers");
  }
  const auto shapes = llama_projection_shapes(config);
  return llama_layer_tensor_name(id.layer, shapes[static_cast<size_t>(id.kind)].suffix);
}

QuantizedWeight quantize_checkpoint_tensor(const TensorStore& store, const std::string& name,
                                           int64_t rows, int64_t cols, int64_t slice_bytes) {
  store.check(name, {rows, cols});
  QuantizedWeight q;
  q.rows = rows;
  q.cols = cols;
  q.values.resize(static_cast<size_t>(rows * cols));
  q.scales.resize(static_cast<size_t>(rows));
  const int64_t slice_rows = std::clamp<int64_t>(slice_bytes / (4 * std::max<int64_t>(cols, 1)), 1,
                                                 std::max<int64_t>(rows, 1));
  std::vector<float> slice;
  for (int64_t begin = 0; begin < rows; begin += slice_rows) {
    const int64_t count = std::min(slice_rows, rows - begin);
    slice.resize(static_cast<size_t>(count * cols));
    store.read_f32_rows(name, {rows, cols}, begin, count, slice);
    quantize_weight_rows_into(slice, begin, count, q);
    store.release_rows(name, begin, count);
  }
  return q;
}

QuantizedWeight quantize_checkpoint_projection(const TensorStore& store, const LlamaConfig& config,
                                               ProjectionId id) {
  const ProjectionDims dims = projection_dims(config, id.kind);
  return quantize_checkpoint_tensor(store, projection_tensor_name(config, id), dims.d_out,
                                    dims.d_in);
}

QuantizedWeight quantized_projection(const LlamaWeights& weights, ProjectionId id) {
  const bool in_memory = id.kind == ProjectionKind::kLmHead ? weights.lm_head().size() > 0
                                                            : has_decoder_projections(weights);
  if (in_memory || !weights.store) return quantize_weight_rows(projection_weight(weights, id));
  return quantize_checkpoint_projection(*weights.store, weights.config, id);
}

}  // namespace model
