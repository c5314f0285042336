// Int8Backend: each projection as the exact integer product an FHE worker computes, without
// encryption.
//
// The weights are quantized once per output channel and kept as int8; each call quantizes the
// activations per token, forms acc = Wq * Xq exactly, and dequantizes (quantize.h). The integer
// product runs as float32 GEMMs over slices of at most kExactInnerSlice input features: every
// product and partial sum is then an integer below 2^24 in magnitude, so each slice is exact,
// and the slices are summed in int64. backward() forms dx = W^T G with the same int8 weight,
// the weight scales folded into the gradients before they are quantized per token (quantize.h).
//
// Groups (linear_backend.h): forward_group() quantizes the shared input once; its results equal
// separate forward() calls bit for bit. backward_group() treats the group as ONE stacked matrix
// W = [W_0; W_1; ...] (its int8 rows and per output channel scales are the parts', concatenated):
// the gradients are folded with their projection's scales and quantized per token with one scale
// over the whole stack (quantize_stacked_gradients), acc = sum_j Wq_j^T G'q_j is summed exactly
// in int64 and dequantized once. This is the definition of the fused backward product that every
// exact backend (the encrypted ones) reproduces bit for bit; it differs from the float sum of
// separate backward() calls only by rounding.
#pragma once

#include <memory>
#include <span>
#include <vector>

#include "model/linear_backend.h"
#include "model/llama_weights.h"
#include "model/quantize.h"

namespace model {

// 1024 * 127 * 127 < 2^24: the widest slice a float32 GEMM of int8 values sums exactly.
inline constexpr int64_t kExactInnerSlice = 1024;

class Int8Backend : public LinearBackend {
 public:
  explicit Int8Backend(const LlamaWeights& weights);

  void forward(ProjectionId id, const Activations& x, Activations& y) override;
  void backward(ProjectionId id, const Activations& g, Activations& dx) override;
  void forward_group(std::span<const ProjectionId> ids, const Activations& x,
                     std::span<Activations* const> ys) override;
  void backward_group(std::span<const ProjectionId> ids, std::span<const Activations* const> gs,
                      Activations& dx) override;
  std::string_view name() const override { return "int8"; }

  const QuantizedWeight& weight(ProjectionId id) const;

 private:
  LlamaConfig config_;
  std::vector<QuantizedWeight> weights_;  // indexed by projection_index
};

// One projection the way Int8Backend runs it (quantize per token, exact int8 product,
// dequantize), for a caller that holds a single quantized weight: y = W x, dx = W^T g. Throw
// model::ModelError naming `id` when the shapes disagree.
void int8_forward(ProjectionId id, const QuantizedWeight& w, const Activations& x, Activations& y);
void int8_backward(ProjectionId id, const QuantizedWeight& w, const Activations& g,
                   Activations& dx);

// The fused backward of a group (Int8Backend::backward_group) for a caller that holds the
// quantized weights: dx = sum_j W_j^T gs[j]. Throws model::ModelError naming the projection whose
// shape disagrees.
void int8_backward_group(std::span<const ProjectionId> ids,
                         std::span<const QuantizedWeight* const> ws,
                         std::span<const Activations* const> gs, Activations& dx);

// The exact product acc = W * X of an int8 weight (row-major d_out x d_in) and int8 tokens
// (column-major d_in x T), as a column-major d_out x T int64 matrix.
Eigen::Matrix<int64_t, Eigen::Dynamic, Eigen::Dynamic> int8_product(const QuantizedWeight& w,
                                                                    const QuantizedTokens& x);

// The exact product acc = W^T * G of an int8 weight (row-major d_out x d_in) and int8 gradient
// tokens (column-major d_out x T), as a column-major d_in x T int64 matrix.
Eigen::Matrix<int64_t, Eigen::Dynamic, Eigen::Dynamic> int8_transposed_product(
    const QuantizedWeight& w, const QuantizedTokens& g);

}  // namespace model
