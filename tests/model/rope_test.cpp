// RoPE (rotate_half layout) against hand computations.
#include "model/rope.h"

#include <gtest/gtest.h>

#include <cmath>
#include <numbers>

#include "model/error.h"
#include "model/llama_presets.h"

namespace {

model::LlamaConfig rope_config(int64_t head_dim, double theta) {
  model::LlamaConfig c;
  c.head_dim = head_dim;
  c.rope_theta = theta;
  return c;
}

TEST(Rope, InverseFrequencies) {
  const auto f = model::rope_inv_freq(rope_config(4, 10000));
  ASSERT_EQ(f.size(), 2u);
  EXPECT_DOUBLE_EQ(f[0], 1.0);
  EXPECT_DOUBLE_EQ(f[1], 0.01);  // 1 / 10000^(2/4)
  const auto g = model::rope_inv_freq(rope_config(8, 500000));
  EXPECT_NEAR(g[3], 1 / std::pow(500000.0, 6.0 / 8), 1e-18);
}

TEST(Rope, LinearScalingDividesEveryFrequency) {
  auto c = rope_config(4, 10000);
  c.rope_scaling = model::RopeScaling{"linear", 4.0};
  const auto f = model::rope_inv_freq(c);
  EXPECT_DOUBLE_EQ(f[0], 0.25);
  EXPECT_DOUBLE_EQ(f[1], 0.0025);
}

TEST(Rope, Llama3ScalingKeepsHighSlowsLowAndBlendsTheBand) {
  // head_dim 6, theta 10000: inv_freq 1, 10000^(-1/3), 10000^(-2/3); wavelengths 6.28, 135, 2917.
  auto c = rope_config(6, 10000);
  model::RopeScaling s;
  s.rope_type = "llama3";
  s.factor = 8;
  s.low_freq_factor = 1;
  s.high_freq_factor = 4;
  s.original_max_position_embeddings = 256;  // wavelengths > 256 slowed, < 64 kept
  c.rope_scaling = s;
  const auto f = model::rope_inv_freq(c);
  const double f1 = std::pow(10000.0, -1.0 / 3), f2 = std::pow(10000.0, -2.0 / 3);
  EXPECT_DOUBLE_EQ(f[0], 1.0);
  const double smooth = (256 / (2 * std::numbers::pi / f1) - 1) / (4 - 1);
  EXPECT_NEAR(f[1], (1 - smooth) * f1 / 8 + smooth * f1, 1e-15);
  EXPECT_NEAR(f[2], f2 / 8, 1e-18);
}

// The Llama-3.2-1B and 3.1-8B presets against transformers' _compute_llama3_parameters written
// out here per band: wavelengths under old_context / high_freq_factor kept, over
// old_context / low_freq_factor divided by factor, and between them blended with
// smooth = (old_context / wavelength - low) / (high - low).
TEST(Rope, Llama3PresetsMatchTransformersPerBand) {
  for (const char* name : {"llama-3.2-1b", "llama-3.1-8b"}) {
    const auto c = *model::llama_preset(name);
    const double factor = std::string(name) == "llama-3.2-1b" ? 32.0 : 8.0;
    const auto f = model::rope_inv_freq(c);
    ASSERT_EQ(f.size(), static_cast<size_t>(c.head_dim / 2));
    int kept = 0, scaled = 0, blended = 0;
    for (size_t i = 0; i < f.size(); ++i) {
      const double base =
          std::pow(500000.0, -2.0 * static_cast<double>(i) / static_cast<double>(c.head_dim));
      const double wavelength = 2 * std::numbers::pi / base;
      double want;
      if (wavelength < 8192.0 / 4.0) {
        want = base, ++kept;
      } else if (wavelength > 8192.0 / 1.0) {
        want = base / factor, ++scaled;
      } else {
        const double smooth = (8192.0 / wavelength - 1.0) / (4.0 - 1.0);
        want = (1 - smooth) * base / factor + smooth * base, ++blended;
      }
      EXPECT_NEAR(f[i], want, 1e-15 * base) << name << " " << i;
    }
    // All three bands occur (head_dim 64 and 128 over theta 500000 and old context 8192).
    EXPECT_GT(kept, 0) << name;
    EXPECT_GT(scaled, 0) << name;
    EXPECT_GT(blended, 0) << name;
    EXPECT_DOUBLE_EQ(f[0], 1.0);
    EXPECT_NEAR(f.back(), std::pow(500000.0, -(c.head_dim - 2.0) / c.head_dim) / factor, 1e-20);
  }
}

TEST(Rope, RotatesHalvesAsHuggingFace) {
  const auto c = rope_config(4, 10000);  // angles at position p: p * 1, p * 0.01
  const model::RopeTable table(c, 2);
  const model::TokenBatch batch({{7, 7}});  // positions 0 and 1
  model::Activations x(8, 2);               // two heads of 4
  for (int t = 0; t < 2; ++t) x.col(t) << 1, 2, 3, 4, 5, 6, 7, 8;
  model::rope_forward(table, batch, 4, x);
  for (int i = 0; i < 8; ++i) EXPECT_FLOAT_EQ(x(i, 0), static_cast<float>(i + 1));  // position 0
  // q * cos + rotate_half(q) * sin, rotate_half(q) = (-q2, -q3, q0, q1).
  const double c0 = std::cos(1.0), s0 = std::sin(1.0), c1 = std::cos(0.01), s1 = std::sin(0.01);
  const double expected[8] = {1 * c0 - 3 * s0, 2 * c1 - 4 * s1, 3 * c0 + 1 * s0, 4 * c1 + 2 * s1,
                              5 * c0 - 7 * s0, 6 * c1 - 8 * s1, 7 * c0 + 5 * s0, 8 * c1 + 6 * s1};
  for (int i = 0; i < 8; ++i) EXPECT_NEAR(x(i, 1), expected[i], 1e-6) << i;
}

TEST(Rope, PositionsRestartInEverySequence) {
  const auto c = rope_config(4, 10000);
  const model::RopeTable table(c, 3);
  model::Activations a = model::Activations::Random(4, 3);
  model::Activations b(4, 5);
  b.leftCols(3) = a;
  b.rightCols(2) = a.leftCols(2);
  model::rope_forward(table, model::TokenBatch({{1, 2, 3}}), 4, a);
  model::rope_forward(table, model::TokenBatch({{1, 2, 3}, {4, 5}}), 4, b);
  EXPECT_EQ(b.leftCols(3), a);
  EXPECT_EQ(b.rightCols(2), a.leftCols(2));
}

TEST(Rope, RefusesATableTooShort) {
  const model::RopeTable table(rope_config(4, 10000), 2);
  model::Activations x = model::Activations::Zero(4, 3);
  EXPECT_THROW(model::rope_forward(table, model::TokenBatch({{1, 2, 3}}), 4, x), model::ModelError);
}

}  // namespace
