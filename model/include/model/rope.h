// Rotary position embedding as Hugging Face Llama applies it (the rotate_half layout), and its
// backward pass.
//
// Per head, the feature pairs are (i, i + head_dim/2), not adjacent features. With
//   inv_freq[i] = 1 / rope_theta^(2i / head_dim),  i < head_dim/2   (then rope_scaling, if any)
//   angle(p, j) = p * inv_freq[j mod head_dim/2]   (cos and sin repeated over both halves)
// a head vector q at position p becomes  q * cos + rotate_half(q) * sin, rotate_half(q) being
// (-q[half:], q[:half]). Angles are computed in double and rounded once to float32 (transformers
// rounds inv_freq and p * inv_freq to float32 first; the difference is below 1e-7 relative for
// short sequences and makes this table slightly more accurate for long ones). The double twin of
// the layer (activations.h) uses the same float32 table.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "model/activations.h"
#include "model/llama_config.h"
#include "model/token_batch.h"

namespace model {

// The inverse frequencies of `config` (head_dim / 2 values), with "linear" or "llama3"
// rope_scaling applied as transformers' rope initialisation functions do.
std::vector<double> rope_inv_freq(const LlamaConfig& config);

// cos and sin of every position below `positions` and every frequency.
class RopeTable {
 public:
  RopeTable(const LlamaConfig& config, int64_t positions);

  int64_t positions() const { return positions_; }
  int64_t half() const { return half_; }
  // Of angle(p, i), i < half().
  float cos(int64_t p, int64_t i) const { return cos_[p * half_ + i]; }
  float sin(int64_t p, int64_t i) const { return sin_[p * half_ + i]; }

 private:
  int64_t positions_ = 0;
  int64_t half_ = 0;
  std::vector<float> cos_, sin_;
};

// Rotates, in place, every head (rows [h * head_dim, (h + 1) * head_dim)) of every column of x;
// the column's position is its index within its sequence of `batch`. head_dim must be
// 2 * table.half() and the table must cover the longest sequence; throws model::ModelError
// otherwise.
template <typename Scalar>
void rope_forward(const RopeTable& table, const TokenBatch& batch, int64_t head_dim,
                  ActivationsT<Scalar>& x);

// The backward pass, in place: dL/dy becomes dL/dx. RoPE is linear and each pair (i, i + half)
// turns by an angle, so the backward multiplies by the transposed rotation, i.e. turns every
// pair back by the same angle (the forward with sin negated).
template <typename Scalar>
void rope_backward(const RopeTable& table, const TokenBatch& batch, int64_t head_dim,
                   ActivationsT<Scalar>& dx);

}  // namespace model
