#include "model/int8_backend.h"

#include <oneapi/dnnl/dnnl.h>

#include <algorithm>
#include <string>

#include "fhe/plane_gemm.h"
#include "model/error.h"

namespace model {
namespace {

// Rows of the weight converted to float at a time (bounds the temporary to 16 MB).
constexpr int64_t kRowBlock = 4096;

void check_input(ProjectionId id, const QuantizedWeight& w, const Activations& x) {
  if (x.rows() != w.cols) {
    throw ModelError("projection " + projection_name(id) + ": input has " + std::to_string(x.rows()) +
                " features, the weight takes " + std::to_string(w.cols));
  }
}

void check_gradient(ProjectionId id, const QuantizedWeight& w, const Activations& g) {
  if (g.rows() != w.rows) {
    throw ModelError("projection " + projection_name(id) + ": output gradient has " +
                std::to_string(g.rows()) + " features, the weight gives " + std::to_string(w.rows));
  }
}

using Int64Matrix = Eigen::Matrix<int64_t, Eigen::Dynamic, Eigen::Dynamic>;

// C (m x n, row-major int32) = op(A) * op(B) for int8 A and B with oneDNN, exactly: used only
// where the CPU's int8 dot product does not saturate (VNNI / AMX), and |C| <= k * 128 * 128
// stays far inside int32 for every projection width a model config allows.
bool onednn_int8_gemm(char ta, char tb, int64_t m, int64_t n, int64_t k, const int8_t* a,
                      int64_t lda, const int8_t* b, int64_t ldb, Int64Matrix& out) {
  static const bool usable = fhe::cpu_has_int8_dot_product();
  if (!usable || k > (int64_t{1} << 16)) return false;
  std::vector<int32_t> c(static_cast<size_t>(m * n));
  const int32_t zero = 0;
  if (m > 0 && n > 0 &&
      dnnl_gemm_s8s8s32(ta, tb, 'F', m, n, k, 1.0f, a, lda, 0, b, ldb, 0, 0.0f, c.data(), n,
                        &zero) != dnnl_success) {
    return false;
  }
  // c is row-major m x n, i.e. the column-major n x m result.
  out.resize(n, m);
  for (size_t i = 0; i < c.size(); ++i) out.data()[i] = c[i];
  return true;
}

}  // namespace

Eigen::Matrix<int64_t, Eigen::Dynamic, Eigen::Dynamic> int8_product(const QuantizedWeight& w,
                                                                    const QuantizedTokens& x) {
  // acc (d_out x T, column-major) is row-major acc^T = X^T W^T.
  Int64Matrix fast;
  if (onednn_int8_gemm('N', 'T', x.tokens, w.rows, w.cols, x.values.data(), w.cols, w.values.data(),
                       w.cols, fast)) {
    return fast;
  }
  using Int8Rows = Eigen::Matrix<int8_t, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  using Int8Cols = Eigen::Matrix<int8_t, Eigen::Dynamic, Eigen::Dynamic>;
  const Eigen::Map<const Int8Rows> wq(w.values.data(), w.rows, w.cols);
  const Eigen::Map<const Int8Cols> xq(x.values.data(), x.features, x.tokens);
  Eigen::Matrix<int64_t, Eigen::Dynamic, Eigen::Dynamic> acc =
      Eigen::Matrix<int64_t, Eigen::Dynamic, Eigen::Dynamic>::Zero(w.rows, x.tokens);
  Eigen::MatrixXf wf, xf, part;
  for (int64_t k0 = 0; k0 < w.cols; k0 += kExactInnerSlice) {
    const int64_t kn = std::min(kExactInnerSlice, w.cols - k0);
    xf = xq.middleRows(k0, kn).cast<float>();
    for (int64_t r0 = 0; r0 < w.rows; r0 += kRowBlock) {
      const int64_t rn = std::min(kRowBlock, w.rows - r0);
      wf = wq.block(r0, k0, rn, kn).cast<float>();
      part.noalias() = wf * xf;  // exact: every partial sum is an integer below 2^24
      acc.middleRows(r0, rn) += part.cast<int64_t>();
    }
  }
  return acc;
}

Eigen::Matrix<int64_t, Eigen::Dynamic, Eigen::Dynamic> int8_transposed_product(
    const QuantizedWeight& w, const QuantizedTokens& g) {
  // acc (d_in x T, column-major) is row-major acc^T = G^T W.
  Int64Matrix fast;
  if (onednn_int8_gemm('N', 'N', g.tokens, w.cols, w.rows, g.values.data(), w.rows, w.values.data(),
                       w.cols, fast)) {
    return fast;
  }
  using Int8Cols = Eigen::Matrix<int8_t, Eigen::Dynamic, Eigen::Dynamic>;
  // The row-major d_out x d_in weight read column-major is W^T (d_in x d_out).
  const Eigen::Map<const Int8Cols> wt(w.values.data(), w.cols, w.rows);
  const Eigen::Map<const Int8Cols> gq(g.values.data(), g.features, g.tokens);
  Eigen::Matrix<int64_t, Eigen::Dynamic, Eigen::Dynamic> acc =
      Eigen::Matrix<int64_t, Eigen::Dynamic, Eigen::Dynamic>::Zero(w.cols, g.tokens);
  Eigen::MatrixXf wf, gf, part;
  for (int64_t k0 = 0; k0 < w.rows; k0 += kExactInnerSlice) {
    const int64_t kn = std::min(kExactInnerSlice, w.rows - k0);
    gf = gq.middleRows(k0, kn).cast<float>();
    for (int64_t r0 = 0; r0 < w.cols; r0 += kRowBlock) {
      const int64_t rn = std::min(kRowBlock, w.cols - r0);
      wf = wt.block(r0, k0, rn, kn).cast<float>();
      part.noalias() = wf * gf;  // exact: every partial sum is an integer below 2^24
      acc.middleRows(r0, rn) += part.cast<int64_t>();
    }
  }
  return acc;
}

Int8Backend::Int8Backend(const LlamaWeights& weights) : config_(weights.config) {
  for (const ProjectionId id : llama_projections(config_)) {
    weights_.push_back(quantize_weight_rows(projection_weight(weights, id)));
  }
}

const QuantizedWeight& Int8Backend::weight(ProjectionId id) const {
  return weights_[projection_index(config_, id)];
}

void int8_forward(ProjectionId id, const QuantizedWeight& w, const Activations& x, Activations& y) {
  check_input(id, w, x);
  const QuantizedTokens xq = quantize_tokens(x);
  const auto acc = int8_product(w, xq);
  dequantize_product(acc.data(), 1, acc.rows(), w.scales, xq.scales, y);
}

void int8_backward(ProjectionId id, const QuantizedWeight& w, const Activations& g,
                   Activations& dx) {
  check_gradient(id, w, g);
  const QuantizedTokens gq = quantize_gradients(g, w.scales);
  const auto acc = int8_transposed_product(w, gq);
  dequantize_transposed_product(acc.data(), 1, acc.rows(), w.cols, gq.scales, dx);
}

void int8_backward_group(std::span<const ProjectionId> ids,
                         std::span<const QuantizedWeight* const> ws,
                         std::span<const Activations* const> gs, Activations& dx) {
  if (ids.empty() || ws.size() != ids.size() || gs.size() != ids.size()) {
    throw ModelError("int8 projection group: " + std::to_string(ids.size()) + " projections, " +
                std::to_string(ws.size()) + " weights and " + std::to_string(gs.size()) +
                " gradients");
  }
  std::vector<std::span<const float>> scales;
  for (size_t j = 0; j < ids.size(); ++j) {
    check_gradient(ids[j], *ws[j], *gs[j]);
    if (ws[j]->cols != ws[0]->cols) {
      throw ModelError("int8 projection group: " + projection_name(ids[j]) + " takes " +
                  std::to_string(ws[j]->cols) + " features, " + projection_name(ids[0]) + " " +
                  std::to_string(ws[0]->cols));
    }
    scales.push_back(ws[j]->scales);
  }
  const QuantizedTokens gq = quantize_stacked_gradients(gs, scales);
  Int64Matrix acc;
  int64_t at = 0;
  for (size_t j = 0; j < ids.size(); ++j) {
    const auto part = int8_transposed_product(*ws[j], token_rows(gq, at, ws[j]->rows));
    at += ws[j]->rows;
    if (j == 0) {
      acc = part;
    } else {
      acc += part;  // exact: int64
    }
  }
  dequantize_transposed_product(acc.data(), 1, acc.rows(), ws[0]->cols, gq.scales, dx);
}

void Int8Backend::forward(ProjectionId id, const Activations& x, Activations& y) {
  int8_forward(id, weight(id), x, y);
}

void Int8Backend::backward(ProjectionId id, const Activations& g, Activations& dx) {
  int8_backward(id, weight(id), g, dx);
}

void Int8Backend::forward_group(std::span<const ProjectionId> ids, const Activations& x,
                                std::span<Activations* const> ys) {
  check_group(ids.size(), ys.size());
  for (const ProjectionId id : ids) check_input(id, weight(id), x);
  const QuantizedTokens xq = quantize_tokens(x);  // once for the group
  for (size_t j = 0; j < ids.size(); ++j) {
    const QuantizedWeight& w = weight(ids[j]);
    const auto acc = int8_product(w, xq);
    dequantize_product(acc.data(), 1, acc.rows(), w.scales, xq.scales, *ys[j]);
  }
}

void Int8Backend::backward_group(std::span<const ProjectionId> ids,
                                 std::span<const Activations* const> gs, Activations& dx) {
  check_group(ids.size(), gs.size());
  std::vector<const QuantizedWeight*> ws;
  for (const ProjectionId id : ids) ws.push_back(&weight(id));
  int8_backward_group(ids, ws, gs, dx);
}

}  // namespace model
