// Int8 quantization and the exact int8 product.
#include "model/quantize.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>

#include "model/error.h"
#include "model/int8_backend.h"

namespace {

TEST(Quantize, ScaleIsMaxOver127AndOneForZeros) {
  const float v[] = {-2.54f, 1.0f, 0.5f};
  EXPECT_FLOAT_EQ(model::int8_scale(v), 2.54f / 127);
  const float zeros[] = {0.0f, -0.0f};
  EXPECT_EQ(model::int8_scale(zeros), 1.0f);
  const float tiny[] = {1e-45f, 0.0f};  // max / 127 underflows to 0
  EXPECT_EQ(model::int8_scale(tiny), 1.0f);
  EXPECT_EQ(model::quantize_int8(tiny[0], 1.0f), 0);
  const float nan[] = {1.0f, std::numeric_limits<float>::quiet_NaN()};
  EXPECT_THROW(model::int8_scale(nan), model::Error);
  const float inf[] = {std::numeric_limits<float>::infinity()};
  EXPECT_THROW(model::int8_scale(inf), model::Error);
}

TEST(Quantize, RoundsHalfAwayFromZeroAndClamps) {
  EXPECT_EQ(model::quantize_int8(63.5f, 1), 64);
  EXPECT_EQ(model::quantize_int8(-63.5f, 1), -64);
  EXPECT_EQ(model::quantize_int8(0.5f, 1), 1);
  EXPECT_EQ(model::quantize_int8(-0.5f, 1), -1);
  EXPECT_EQ(model::quantize_int8(0.49f, 1), 0);
  EXPECT_EQ(model::quantize_int8(300, 1), 127);
  EXPECT_EQ(model::quantize_int8(-300, 1), -127);
  EXPECT_EQ(model::quantize_int8(3, 0.5f), 6);
}

TEST(Quantize, WeightRowsAndTokenColumns) {
  model::Matrix w(2, 3);
  w << 1.27f, -0.635f, 0.1f,  //
      0, 0, 0;
  const model::QuantizedWeight qw = model::quantize_weight_rows(w);
  ASSERT_EQ(qw.scales.size(), 2u);
  EXPECT_FLOAT_EQ(qw.scales[0], 0.01f);
  EXPECT_EQ(qw.scales[1], 1.0f);
  EXPECT_EQ(qw.values, (std::vector<int8_t>{127, -64, 10, 0, 0, 0}));

  model::Activations x(2, 2);
  x << 4, 0,  //
      -2, 0;  // token 0 = (4, -2), token 1 = (0, 0)
  const model::QuantizedTokens qx = model::quantize_tokens(x);
  EXPECT_FLOAT_EQ(qx.scales[0], 4.0f / 127);
  EXPECT_EQ(qx.scales[1], 1.0f);
  EXPECT_EQ(qx.values, (std::vector<int8_t>{127, -64, 0, 0}));                // column-major
  EXPECT_EQ(model::feature_rows(qx), (std::vector<int8_t>{127, 0, -64, 0}));  // row-major
}

TEST(Quantize, DequantizeMultipliesBothScales) {
  const int64_t acc[] = {10, -20, 30, 40};  // row-major 2 x 2
  const float ws[] = {0.5f, 2.0f}, xs[] = {3.0f, 0.25f};
  model::Activations y;
  model::dequantize_product(acc, 2, 1, ws, xs, y);
  EXPECT_FLOAT_EQ(y(0, 0), 15);
  EXPECT_FLOAT_EQ(y(0, 1), -2.5f);
  EXPECT_FLOAT_EQ(y(1, 0), 180);
  EXPECT_FLOAT_EQ(y(1, 1), 20);
}

// The float-sliced int8 product equals the int64 product, also past one slice and at the
// extremes.
TEST(Quantize, Int8ProductIsExact) {
  std::mt19937 rng(7);
  std::uniform_int_distribution<int> dist(-127, 127);
  model::QuantizedWeight w;
  w.rows = 5;
  w.cols = 2 * model::kExactInnerSlice + 37;
  model::QuantizedTokens x;
  x.features = w.cols;
  x.tokens = 3;
  for (int64_t i = 0; i < w.rows * w.cols; ++i) w.values.push_back(static_cast<int8_t>(dist(rng)));
  for (int64_t i = 0; i < x.features * x.tokens; ++i) {
    x.values.push_back(static_cast<int8_t>(dist(rng)));
  }
  for (int64_t j = 0; j < w.cols; ++j) {  // row 0 and token 0 at the extremes: the largest sums
    w.values[j] = 127;
    x.values[j] = (j % 3 == 0) ? -127 : 127;
    w.values[w.cols + j] = -127;
  }
  const auto acc = model::int8_product(w, x);
  for (int64_t i = 0; i < w.rows; ++i) {
    for (int64_t t = 0; t < x.tokens; ++t) {
      int64_t expected = 0;
      for (int64_t j = 0; j < w.cols; ++j) {
        expected += int64_t{w.values[i * w.cols + j]} * x.values[t * x.features + j];
      }
      EXPECT_EQ(acc(i, t), expected) << i << ", " << t;
    }
  }
}

}  // namespace
