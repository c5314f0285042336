#include "model/quantize.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

#include "model/error.h"

namespace model {

float int8_scale(std::span<const float> v) {
  // Branch-free, so that it vectorises: a NaN or an infinity fails `<= max` and is reported
  // after the loop.
  float max_abs = 0;
  bool finite = true;
  for (const float x : v) {
    const float a = std::fabs(x);
    finite &= a <= std::numeric_limits<float>::max();
    max_abs = a > max_abs ? a : max_abs;
  }
  if (!finite) throw ModelError("int8 quantization: a value is not finite");
  const float scale = max_abs / static_cast<float>(kInt8Max);
  return scale > 0 ? scale : 1.0f;  // zeros, or values so small that the scale underflows
}

QuantizedWeight quantize_weight_rows(const Matrix& w) {
  QuantizedWeight q;
  q.rows = w.rows();
  q.cols = w.cols();
  q.values.resize(static_cast<size_t>(w.size()));
  q.scales.resize(static_cast<size_t>(w.rows()));
  quantize_weight_rows_into(std::span<const float>(w.data(), static_cast<size_t>(w.size())), 0,
                            w.rows(), q);
  return q;
}

void quantize_weight_rows_into(std::span<const float> values, int64_t row_begin, int64_t rows,
                               QuantizedWeight& q) {
  const int64_t cols = q.cols;
  if (row_begin < 0 || rows < 0 || row_begin + rows > q.rows ||
      static_cast<int64_t>(values.size()) != rows * cols ||
      static_cast<int64_t>(q.values.size()) != q.rows * q.cols ||
      static_cast<int64_t>(q.scales.size()) != q.rows) {
    throw ModelError("quantize_weight_rows_into: " + std::to_string(rows) + " rows at " +
                std::to_string(row_begin) + " do not fit a " + std::to_string(q.rows) + " x " +
                std::to_string(q.cols) + " weight");
  }
  // Rows are independent: on every thread for a large slice; a non-finite value is reported
  // after the loop.
  bool finite = true;
#pragma omp parallel for schedule(static) reduction(&& : finite) if (rows * cols >= (1 << 16))
  for (int64_t r = 0; r < rows; ++r) {
    const std::span<const float> row =
        values.subspan(static_cast<size_t>(r * cols), static_cast<size_t>(cols));
    float scale = 1;
    try {
      scale = int8_scale(row);
    } catch (const ModelError&) {
      finite = false;
    }
    const int64_t i = row_begin + r;
    q.scales[static_cast<size_t>(i)] = scale;
    int8_t* out = q.values.data() + i * cols;
    for (size_t j = 0; j < row.size(); ++j) out[j] = quantize_int8(row[j], scale);
  }
  if (!finite) throw ModelError("int8 quantization: a value is not finite");
}

QuantizedTokens quantize_tokens(const Activations& x) {
  QuantizedTokens q;
  q.features = x.rows();
  q.tokens = x.cols();
  q.values.resize(static_cast<size_t>(x.size()));
  q.scales.resize(static_cast<size_t>(x.cols()));
  // Tokens are independent: one per iteration, on every thread for a large matrix (the same
  // values as one thread). A non-finite value is reported after the loop.
  bool finite = true;
#pragma omp parallel for schedule(static) reduction(&& : finite) if (x.size() >= (1 << 16))
  for (int64_t t = 0; t < x.cols(); ++t) {
    const std::span<const float> col(x.data() + t * x.rows(), static_cast<size_t>(x.rows()));
    float scale = 1;
    try {
      scale = int8_scale(col);
    } catch (const ModelError&) {
      finite = false;
    }
    q.scales[static_cast<size_t>(t)] = scale;
    int8_t* out = q.values.data() + t * x.rows();
    for (size_t j = 0; j < col.size(); ++j) out[j] = quantize_int8(col[j], scale);
  }
  if (!finite) throw ModelError("int8 quantization: a value is not finite");
  return q;
}

std::vector<int8_t> feature_rows(const QuantizedTokens& x) {
  std::vector<int8_t> out(x.values.size());
  // A transpose in tiles of 64 x 64 bytes (cache-friendly both ways), tiles of features on
  // every thread.
  constexpr int64_t kTile = 64;
  const int64_t features = x.features, tokens = x.tokens;
#pragma omp parallel for schedule(static) if (x.values.size() >= (1 << 16))
  for (int64_t j0 = 0; j0 < features; j0 += kTile) {
    const int64_t j1 = std::min(features, j0 + kTile);
    for (int64_t t0 = 0; t0 < tokens; t0 += kTile) {
      const int64_t t1 = std::min(tokens, t0 + kTile);
      for (int64_t t = t0; t < t1; ++t) {
        const int8_t* col = x.values.data() + t * features;
        for (int64_t j = j0; j < j1; ++j) out[static_cast<size_t>(j * tokens + t)] = col[j];
      }
    }
  }
  return out;
}

void dequantize_product(const int64_t* acc, int64_t row_stride, int64_t col_stride,
                        std::span<const float> w_scales, std::span<const float> x_scales,
                        Activations& y) {
  const auto rows = static_cast<int64_t>(w_scales.size());
  const auto cols = static_cast<int64_t>(x_scales.size());
  y.resize(rows, cols);
  // The one formula every int8 path shares; the loop order only follows acc's memory order.
  const auto element = [&](int64_t i, int64_t t) {
    y(i, t) = dequantize_element(acc[i * row_stride + t * col_stride], w_scales[i], x_scales[t]);
  };
  // Elements are independent: the outer loop runs on every thread for a large product.
  const bool parallel = rows * cols >= (1 << 16);
  if (row_stride <= col_stride) {
#pragma omp parallel for schedule(static) if (parallel)
    for (int64_t t = 0; t < cols; ++t) {
      for (int64_t i = 0; i < rows; ++i) element(i, t);
    }
  } else {
#pragma omp parallel for schedule(static) if (parallel)
    for (int64_t i = 0; i < rows; ++i) {
      for (int64_t t = 0; t < cols; ++t) element(i, t);
    }
  }
}

QuantizedTokens quantize_gradients(const Activations& g, std::span<const float> w_scales) {
  if (static_cast<int64_t>(w_scales.size()) != g.rows()) {
    throw ModelError("int8 gradient quantization: " + std::to_string(w_scales.size()) +
                " weight scales for gradients of " + std::to_string(g.rows()) + " outputs");
  }
  const Eigen::Map<const Eigen::VectorXf> s(w_scales.data(), g.rows());
  const Activations folded = s.asDiagonal() * g;  // G'(i, t) = scale_w[i] * G(i, t), one product
  return quantize_tokens(folded);
}

QuantizedTokens quantize_stacked_gradients(std::span<const Activations* const> gs,
                                           std::span<const std::span<const float>> w_scales) {
  if (gs.empty() || gs.size() != w_scales.size()) {
    throw ModelError("int8 gradient quantization: " + std::to_string(gs.size()) + " gradients and " +
                std::to_string(w_scales.size()) + " scale vectors");
  }
  int64_t rows = 0;
  const int64_t tokens = gs[0]->cols();
  for (size_t j = 0; j < gs.size(); ++j) {
    if (static_cast<int64_t>(w_scales[j].size()) != gs[j]->rows()) {
      throw ModelError("int8 gradient quantization: " + std::to_string(w_scales[j].size()) +
                  " weight scales for gradients of " + std::to_string(gs[j]->rows()) + " outputs");
    }
    if (gs[j]->cols() != tokens) {
      throw ModelError("int8 gradient quantization: stacked gradients of " +
                  std::to_string(gs[j]->cols()) + " and " + std::to_string(tokens) + " tokens");
    }
    rows += gs[j]->rows();
  }
  Activations folded(rows, tokens);
  int64_t at = 0;
  for (size_t j = 0; j < gs.size(); ++j) {
    const Eigen::Map<const Eigen::VectorXf> s(w_scales[j].data(), gs[j]->rows());
    folded.middleRows(at, gs[j]->rows()) = s.asDiagonal() * *gs[j];  // as quantize_gradients
    at += gs[j]->rows();
  }
  return quantize_tokens(folded);
}

QuantizedTokens token_rows(const QuantizedTokens& q, int64_t begin, int64_t count) {
  if (begin < 0 || count < 0 || begin + count > q.features) {
    throw ModelError("int8 token rows [" + std::to_string(begin) + ", " + std::to_string(begin + count) +
                ") out of " + std::to_string(q.features));
  }
  QuantizedTokens out;
  out.features = count;
  out.tokens = q.tokens;
  out.scales = q.scales;
  out.values.resize(static_cast<size_t>(count * q.tokens));
  for (int64_t t = 0; t < q.tokens; ++t) {
    const int8_t* from = q.values.data() + t * q.features + begin;
    std::copy(from, from + count, out.values.begin() + t * count);
  }
  return out;
}

void dequantize_transposed_product(const int64_t* acc, int64_t row_stride, int64_t col_stride,
                                   int64_t rows, std::span<const float> g_scales, Activations& dx) {
  const auto cols = static_cast<int64_t>(g_scales.size());
  dx.resize(rows, cols);
  // The one formula every int8 path shares; the loop order only follows acc's memory order.
  const auto element = [&](int64_t j, int64_t t) {
    dx(j, t) = dequantize_transposed_element(acc[j * row_stride + t * col_stride], g_scales[t]);
  };
  // Elements are independent: the outer loop runs on every thread for a large product.
  const bool parallel = rows * cols >= (1 << 16);
  if (row_stride <= col_stride) {
#pragma omp parallel for schedule(static) if (parallel)
    for (int64_t t = 0; t < cols; ++t) {
      for (int64_t j = 0; j < rows; ++j) element(j, t);
    }
  } else {
#pragma omp parallel for schedule(static) if (parallel)
    for (int64_t j = 0; j < rows; ++j) {
      for (int64_t t = 0; t < cols; ++t) element(j, t);
    }
  }
}

}  // namespace model
