// Helpers shared by the training tests: random in-memory models and adapters, and central
// finite differences in double precision.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <memory>
#include <random>
#include <span>
#include <vector>

#include "model/activations.h"
#include "model/llama_config.h"
#include "model/llama_weights.h"
#include "model/lora_params.h"

namespace training_test {

// Step of the central differences. The loss is O(1) and computed in double, so the rounding
// error of (f(p + h) - f(p - h)) / 2h is about 1e-16 / h = 1e-11 and the truncation error
// h^2 f''' / 6 about 1e-11 too.
inline constexpr double kStep = 1e-5;
// What the tests demand of ||numeric - analytic||_inf / ||analytic||_inf in double.
inline constexpr double kGradientTolerance = 1e-6;

// A grouped-query config: 4 query heads sharing 2 key/value heads of width 4.
inline model::LlamaConfig tiny_config(int64_t layers = 2) {
  model::LlamaConfig c;
  c.hidden_size = 16;
  c.intermediate_size = 24;
  c.num_hidden_layers = layers;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;
  c.head_dim = 4;
  c.vocab_size = 32;
  c.max_position_embeddings = 64;
  c.rms_norm_eps = 1e-5;
  return c;
}

inline model::Matrix random_matrix(int64_t rows, int64_t cols, float stddev, std::mt19937_64& rng) {
  std::normal_distribution<float> gauss(0, stddev);
  model::Matrix m(rows, cols);
  for (int64_t i = 0; i < m.size(); ++i) m.data()[i] = gauss(rng);
  return m;
}

// Weights in memory: projections N(0, stddev^2) (large enough that attention is far from
// uniform and SiLU far from linear), embeddings N(0, 1), norms 1 + N(0, 0.1^2).
inline std::shared_ptr<const model::LlamaWeights> random_weights(const model::LlamaConfig& c,
                                                                 uint64_t seed,
                                                                 float stddev = 0.3f) {
  std::mt19937_64 rng(seed);
  const auto norm = [&] {
    model::Vector v(c.hidden_size);
    std::normal_distribution<float> gauss(1, 0.1f);
    for (auto& x : v) x = gauss(rng);
    return v;
  };
  model::LlamaWeights w;
  w.config = c;
  w.embed_tokens = random_matrix(c.vocab_size, c.hidden_size, 1, rng);
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    model::LlamaLayerWeights lw;
    lw.input_layernorm = norm();
    lw.q_proj = random_matrix(c.q_dim(), c.hidden_size, stddev, rng);
    lw.k_proj = random_matrix(c.kv_dim(), c.hidden_size, stddev, rng);
    lw.v_proj = random_matrix(c.kv_dim(), c.hidden_size, stddev, rng);
    lw.o_proj = random_matrix(c.hidden_size, c.q_dim(), stddev, rng);
    lw.post_attention_layernorm = norm();
    lw.gate_proj = random_matrix(c.intermediate_size, c.hidden_size, stddev, rng);
    lw.up_proj = random_matrix(c.intermediate_size, c.hidden_size, stddev, rng);
    lw.down_proj = random_matrix(c.hidden_size, c.intermediate_size, stddev, rng);
    w.layers.push_back(std::move(lw));
  }
  w.norm = norm();
  if (!c.tie_word_embeddings)
    w.lm_head_weight = random_matrix(c.vocab_size, c.hidden_size, stddev, rng);
  return std::make_shared<const model::LlamaWeights>(std::move(w));
}

// Every element of every matrix uniform in [-scale, scale] (B too, so that A gets a gradient).
template <typename Scalar>
void randomize(model::LoraParamsT<Scalar>& params, uint64_t seed, double scale) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> u(-scale, scale);
  for (const model::ProjectionId id : params.ids()) {
    model::LoraPairT<Scalar>& p = params.at(id);
    for (int64_t i = 0; i < p.a.size(); ++i) p.a.data()[i] = static_cast<Scalar>(u(rng));
    for (int64_t i = 0; i < p.b.size(); ++i) p.b.data()[i] = static_cast<Scalar>(u(rng));
  }
}

template <typename Derived>
void fill_random(Eigen::MatrixBase<Derived>& m, uint64_t seed, double scale = 1) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> gauss(0, scale);
  for (int64_t j = 0; j < m.cols(); ++j) {
    for (int64_t i = 0; i < m.rows(); ++i)
      m(i, j) = static_cast<typename Derived::Scalar>(gauss(rng));
  }
}

// The central-difference gradient of f with respect to the n doubles at p (restored after).
inline std::vector<double> numeric_gradient(double* p, int64_t n, const std::function<double()>& f,
                                            double h = kStep) {
  std::vector<double> g(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    const double saved = p[i];
    p[i] = saved + h;
    const double up = f();
    p[i] = saved - h;
    const double down = f();
    p[i] = saved;
    g[i] = (up - down) / (2 * h);
  }
  return g;
}

// ||numeric - analytic||_inf / ||analytic||_inf; infinity when the analytic gradient is 0.
inline double relative_error(std::span<const double> numeric, std::span<const double> analytic) {
  double diff = 0, scale = 0;
  for (size_t i = 0; i < numeric.size(); ++i) {
    diff = std::max(diff, std::fabs(numeric[i] - analytic[i]));
    scale = std::max(scale, std::fabs(analytic[i]));
  }
  return scale > 0 ? diff / scale : INFINITY;
}

template <typename Derived>
std::span<const double> as_span(const Eigen::DenseBase<Derived>& m) {
  return {m.derived().data(), static_cast<size_t>(m.size())};
}

// The gradient check of f at the n doubles of p against an analytic gradient of n values.
inline double gradient_error(double* p, const double* analytic, int64_t n,
                             const std::function<double()>& f) {
  const std::vector<double> numeric = numeric_gradient(p, n, f);
  return relative_error(numeric, std::span<const double>(analytic, static_cast<size_t>(n)));
}

}  // namespace training_test
