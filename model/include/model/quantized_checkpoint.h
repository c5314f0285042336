// Quantizing a checkpoint's projections straight from its files.
//
// A worker serves int8 weights and a participant that offloads its projections only needs their
// hash: neither should hold the float32 weights. These read one tensor at a time, in slices of
// rows (at most kQuantizeSliceBytes of float32), quantize each row with the rule of
// quantize_weight_rows and drop the slice's mapped pages, so the memory they need is the int8
// result plus one slice. The results are bit for bit those of quantize_weight_rows over the
// loaded float32 matrix.
#pragma once

#include <cstdint>
#include <string>

#include "model/llama_config.h"
#include "model/llama_weights.h"
#include "model/projection.h"
#include "model/quantize.h"
#include "model/tensor_store.h"

namespace model {

// The float32 bytes of one slice of rows.
inline constexpr int64_t kQuantizeSliceBytes = int64_t{64} << 20;

// The checkpoint tensor holding `id`'s weight: "model.layers.3.self_attn.q_proj.weight", or
// "lm_head.weight" ("model.embed_tokens.weight" when the model ties them).
std::string projection_tensor_name(const LlamaConfig& config, ProjectionId id);

// The [rows, cols] tensor `name` quantized per row, read in slices of at most `slice_bytes` of
// float32 (at least one row). Throws model::ModelError naming file and tensor for a missing tensor,
// another shape or an unreadable dtype.
QuantizedWeight quantize_checkpoint_tensor(const TensorStore& store, const std::string& name,
                                           int64_t rows, int64_t cols,
                                           int64_t slice_bytes = kQuantizeSliceBytes);

// `id`'s weight quantized per output channel (the shape from `config`).
QuantizedWeight quantize_checkpoint_projection(const TensorStore& store, const LlamaConfig& config,
                                               ProjectionId id);

// `id`'s weight quantized per output channel from wherever `weights` holds it: the float32
// matrix in memory, or the files of weights.store when it was not loaded (WeightLoadOptions).
// Throws model::ModelError when it is in neither.
QuantizedWeight quantized_projection(const LlamaWeights& weights, ProjectionId id);

}  // namespace model
