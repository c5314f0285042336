// Symmetric int8 quantization, exactly as participants and FHE workers apply it.
//
// One scale per vector: scale = max|v| / 127 (1 for an all-zero vector, or one whose max|v| / 127
// underflows to 0: every element then quantizes to 0), and each element maps
// to q = round(v / scale) rounded half away from zero and clamped to [-127, 127], so v ~ q*scale.
//   weights      one vector per output channel: row i of W (d_out x d_in)
//   activations  one vector per token: column t of X (d_in x T)
// The integer product acc = Wq * Xq (exact, int64) then dequantizes as
//   y(i, t) = float(double(acc(i, t)) * scale_w[i] * scale_x[t])
// with dequantize_product, which every int8 path (plaintext or decrypted) shares so that their
// outputs agree bit for bit.
//
// The backward product dx = W^T G of a frozen projection (G = dL/dy, d_out x T) reuses the same
// int8 weight Wq. The weight scales belong to W's rows, which W^T G sums over:
//   dx(j, t) = sum_i W(i, j) G(i, t) ~ sum_i Wq(i, j) * (scale_w[i] * G(i, t)),
// so they are folded into the gradient before it is quantized: G'(i, t) = scale_w[i] * G(i, t)
// (float32), G' is quantized per token exactly like activations (scale_g[t] = max|G'(:, t)|/127,
// round half away from zero), acc = Wq^T * G'q is formed exactly, and
//   dx(j, t) = float(double(acc(j, t)) * scale_g[t])
// with dequantize_transposed_product, shared again by every int8 path.
#pragma once

#include <algorithm>
#include <cstdint>
#include <span>
#include <vector>

#include "model/activations.h"
#include "model/llama_weights.h"

namespace model {

inline constexpr int kInt8Max = 127;

// max|v| / 127, or 1 when that is 0. Throws model::ModelError for a non-finite element.
float int8_scale(std::span<const float> v);
// One element: round-half-away-from-zero(v / scale) clamped to [-127, 127], as std::round would
// give it, for every finite float. Written with a truncating conversion instead of std::round
// (a library call) so that loops over it vectorise: x is clamped to [-128, 128] first (which
// changes no clamped result), so x - trunc(x) is exact and decides the rounding.
inline int8_t quantize_int8(float v, float scale) {
  const float x = std::clamp(v / scale, -128.0f, 128.0f);
  const int whole = static_cast<int>(x);  // toward zero
  const float frac = x - static_cast<float>(whole);
  const int r = whole + static_cast<int>(frac >= 0.5f) - static_cast<int>(frac <= -0.5f);
  return static_cast<int8_t>(std::clamp(r, -kInt8Max, kInt8Max));
}

// A weight matrix quantized per output channel.
struct QuantizedWeight {
  int64_t rows = 0;            // d_out
  int64_t cols = 0;            // d_in
  std::vector<int8_t> values;  // row-major d_out x d_in
  std::vector<float> scales;   // one per row
};
QuantizedWeight quantize_weight_rows(const Matrix& w);
// Quantizes `rows` consecutive rows of `cols` values (row-major `values`) into rows
// [row_begin, row_begin + rows) of `q`, which must already have q.rows x q.cols storage: the
// one row rule quantize_weight_rows applies, for a reader that never holds all of W.
void quantize_weight_rows_into(std::span<const float> values, int64_t row_begin, int64_t rows,
                               QuantizedWeight& q);

// Activations quantized per token.
struct QuantizedTokens {
  int64_t features = 0;        // d_in
  int64_t tokens = 0;          // T
  std::vector<int8_t> values;  // column-major d_in x T: token t at [t*d_in, (t+1)*d_in)
  std::vector<float> scales;   // one per token
};
// Throws model::ModelError for a non-finite activation.
QuantizedTokens quantize_tokens(const Activations& x);

// The same values as a row-major d_in x T matrix (row j = feature j of every token), the layout
// the encryptor takes (tokens along polynomial coefficients).
std::vector<int8_t> feature_rows(const QuantizedTokens& x);

// The one dequantization rule of every int8 path: the accumulator times both scales in double,
// rounded once to float (dequantize_product), and times the gradient's token scale
// (dequantize_transposed_product, whose weight scales were folded into G before quantizing).
inline float dequantize_element(int64_t acc, float w_scale, float x_scale) {
  return static_cast<float>(static_cast<double>(acc) * static_cast<double>(w_scale) *
                            static_cast<double>(x_scale));
}
inline float dequantize_transposed_element(int64_t acc, float g_scale) {
  return static_cast<float>(static_cast<double>(acc) * static_cast<double>(g_scale));
}

// y (d_out x T) from the exact accumulators: element (i, t) of acc sits at
// acc[i * row_stride + t * col_stride].
void dequantize_product(const int64_t* acc, int64_t row_stride, int64_t col_stride,
                        std::span<const float> w_scales, std::span<const float> x_scales,
                        Activations& y);

// G' = scale_w[i] * G(i, t) quantized per token (above). w_scales has one scale per row of g.
// Throws model::ModelError for a non-finite gradient or a wrong number of scales.
QuantizedTokens quantize_gradients(const Activations& g, std::span<const float> w_scales);

// The gradients of a group of projections that share one input (q, k, v), as ONE stacked matrix
// W = [W_0; W_1; ...] sees them: the rows of gs[j] (d_out_j x T, folded with w_scales[j]) are
// stacked in list order into G' (sum of d_out_j rows) and quantized per token with one scale per
// token over the whole stack. dx = sum_j W_j^T G_j ~ Wq^T * G'q then dequantizes with
// dequantize_transposed_product like a single projection. Throws model::ModelError as above, or for
// gradients of different token counts.
QuantizedTokens quantize_stacked_gradients(std::span<const Activations* const> gs,
                                           std::span<const std::span<const float>> w_scales);

// Rows [begin, begin + count) of every token of q, as their own QuantizedTokens (the token
// scales are copied unchanged).
QuantizedTokens token_rows(const QuantizedTokens& q, int64_t begin, int64_t count);

// dx (rows x T) from the exact accumulators of Wq^T * G'q: element (j, t) of acc sits at
// acc[j * row_stride + t * col_stride]; g_scales holds one scale per token.
void dequantize_transposed_product(const int64_t* acc, int64_t row_stride, int64_t col_stride,
                                   int64_t rows, std::span<const float> g_scales, Activations& dx);

}  // namespace model
