// The model shape and random weights bench_forward and bench_train measure on: Llama-3.2-1B's
// decoder layer (hidden 2048, intermediate 5632, 16 heads, 4 KV heads) with a 1024 vocabulary, or
// a quick 512-wide shape for a smoke run; 4 sequences of 512 tokens (2 of 256 quick).
#pragma once

#include <cstdint>
#include <random>
#include <vector>

#include "model/llama_config.h"
#include "model/llama_weights.h"

namespace bench {

struct Options {
  bool quick = false;
  int runs = 3;
  int64_t layers = 1;
};

struct Shape {
  model::LlamaConfig config;
  std::vector<int> sequences;  // lengths
};

inline Shape make_shape(const Options& o) {
  model::LlamaConfig c;
  c.hidden_size = o.quick ? 512 : 2048;
  c.intermediate_size = o.quick ? 1376 : 5632;
  c.num_attention_heads = o.quick ? 8 : 16;
  c.num_key_value_heads = o.quick ? 2 : 4;
  c.head_dim = c.hidden_size / c.num_attention_heads;
  c.vocab_size = o.quick ? 512 : 1024;
  c.num_hidden_layers = o.layers;
  c.max_position_embeddings = 2048;
  c.rms_norm_eps = 1e-5;
  return {c, o.quick ? std::vector<int>{256, 256} : std::vector<int>{512, 512, 512, 512}};
}

// N(0, 0.02^2) projections and embeddings, norms 1 + N(0, 0.05^2): test data, not secrets.
inline model::LlamaWeights random_weights(const model::LlamaConfig& c, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> gauss(0.0f, 1.0f);
  const auto matrix = [&](int64_t rows, int64_t cols) {
    model::Matrix m(rows, cols);
    for (int64_t i = 0; i < m.size(); ++i) m.data()[i] = 0.02f * gauss(rng);
    return m;
  };
  const auto norm = [&](int64_t n) {
    model::Vector v(n);
    for (int64_t i = 0; i < n; ++i) v(i) = 1.0f + 0.05f * gauss(rng);
    return v;
  };
  model::LlamaWeights w;
  w.config = c;
  const int64_t h = c.hidden_size, inter = c.intermediate_size;
  w.embed_tokens = matrix(c.vocab_size, h);
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    model::LlamaLayerWeights lw;
    lw.input_layernorm = norm(h);
    lw.q_proj = matrix(c.q_dim(), h);
    lw.k_proj = matrix(c.kv_dim(), h);
    lw.v_proj = matrix(c.kv_dim(), h);
    lw.o_proj = matrix(h, c.q_dim());
    lw.post_attention_layernorm = norm(h);
    lw.gate_proj = matrix(inter, h);
    lw.up_proj = matrix(inter, h);
    lw.down_proj = matrix(h, inter);
    w.layers.push_back(std::move(lw));
  }
  w.norm = norm(h);
  w.lm_head_weight = matrix(c.vocab_size, h);
  return w;
}

}  // namespace bench
