#include "model/rope.h"

#include <cmath>
#include <numbers>

#include "model/error.h"

namespace model {

std::vector<double> rope_inv_freq(const LlamaConfig& config) {
  const int64_t half = config.head_dim / 2;
  std::vector<double> inv_freq(static_cast<size_t>(half));
  for (int64_t i = 0; i < half; ++i) {
    inv_freq[i] = 1.0 / std::pow(config.rope_theta,
                                 static_cast<double>(2 * i) / static_cast<double>(config.head_dim));
  }
  if (!config.rope_scaling) return inv_freq;
  const RopeScaling& s = *config.rope_scaling;
  if (s.rope_type == "linear") {
    for (double& f : inv_freq) f /= s.factor;
    return inv_freq;
  }
  if (s.rope_type == "llama3") {
    // transformers' _compute_llama3_parameters: long wavelengths are slowed down by `factor`,
    // short ones kept, and the band between them interpolated.
    const double old_context = static_cast<double>(s.original_max_position_embeddings);
    const double low_freq_wavelen = old_context / s.low_freq_factor;
    const double high_freq_wavelen = old_context / s.high_freq_factor;
    for (double& f : inv_freq) {
      const double wavelen = 2 * std::numbers::pi / f;
      if (wavelen > low_freq_wavelen) {
        f = f / s.factor;
      } else if (!(wavelen < high_freq_wavelen)) {
        const double smooth =
            (old_context / wavelen - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor);
        f = (1 - smooth) * f / s.factor + smooth * f;
      }
    }
    return inv_freq;
  }
  throw ModelError("rope_scaling type \"" + s.rope_type + "\" is not supported (linear, llama3)");
}

RopeTable::RopeTable(const LlamaConfig& config, int64_t positions)
    : positions_(positions), half_(config.head_dim / 2) {
  const std::vector<double> inv_freq = rope_inv_freq(config);
  cos_.resize(static_cast<size_t>(positions * half_));
  sin_.resize(cos_.size());
  for (int64_t p = 0; p < positions; ++p) {
    for (int64_t i = 0; i < half_; ++i) {
      const double angle = static_cast<double>(p) * inv_freq[i];
      cos_[p * half_ + i] = static_cast<float>(std::cos(angle));
      sin_[p * half_ + i] = static_cast<float>(std::sin(angle));
    }
  }
}

namespace {

// x(i) <- x(i) cos - x(i + half) sign*sin,  x(i + half) <- x(i + half) cos + x(i) sign*sin.
template <typename Scalar>
void rotate_pairs(const RopeTable& table, const TokenBatch& batch, int64_t head_dim, Scalar sign,
                  ActivationsT<Scalar>& x) {
  const int64_t half = table.half();
  if (head_dim != 2 * half || x.rows() % head_dim != 0 || batch.total_tokens() != x.cols()) {
    throw ModelError("rope: activations of " + std::to_string(x.rows()) + " x " +
                std::to_string(x.cols()) + " do not fit heads of " + std::to_string(head_dim) +
                " and a batch of " + std::to_string(batch.total_tokens()) + " tokens");
  }
  if (batch.max_length() > table.positions()) {
    throw ModelError("rope: the table covers " + std::to_string(table.positions()) +
                " positions, the batch needs " + std::to_string(batch.max_length()));
  }
  const int64_t heads = x.rows() / head_dim;
  for (const SequenceSpan& span : batch.spans()) {
    for (int64_t p = 0; p < span.length; ++p) {
      Scalar* col = x.data() + (span.begin + p) * x.rows();
      for (int64_t h = 0; h < heads; ++h) {
        Scalar* head = col + h * head_dim;
        for (int64_t i = 0; i < half; ++i) {
          const auto c = static_cast<Scalar>(table.cos(p, i));
          const Scalar s = sign * static_cast<Scalar>(table.sin(p, i));
          const Scalar a = head[i];
          const Scalar b = head[i + half];
          head[i] = a * c - b * s;         // q * cos + (-q[i + half]) * sin
          head[i + half] = b * c + a * s;  // q * cos + q[i] * sin
        }
      }
    }
  }
}

}  // namespace

template <typename Scalar>
void rope_forward(const RopeTable& table, const TokenBatch& batch, int64_t head_dim,
                  ActivationsT<Scalar>& x) {
  rotate_pairs<Scalar>(table, batch, head_dim, Scalar(1), x);
}

template <typename Scalar>
void rope_backward(const RopeTable& table, const TokenBatch& batch, int64_t head_dim,
                   ActivationsT<Scalar>& dx) {
  rotate_pairs<Scalar>(table, batch, head_dim, Scalar(-1), dx);
}

template void rope_forward<float>(const RopeTable&, const TokenBatch&, int64_t,
                                  ActivationsT<float>&);
template void rope_forward<double>(const RopeTable&, const TokenBatch&, int64_t,
                                   ActivationsT<double>&);
template void rope_backward<float>(const RopeTable&, const TokenBatch&, int64_t,
                                   ActivationsT<float>&);
template void rope_backward<double>(const RopeTable&, const TokenBatch&, int64_t,
                                    ActivationsT<double>&);

}  // namespace model
