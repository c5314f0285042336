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
  EXPECT_THROW(model::int8_scale(nan), model::ModelError);
  const float inf[] = {std::numeric_limits<float>::infinity()};
  EXPECT_THROW(model::int8_scale(inf), model::ModelError);
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

namespace {

// The reference rule: round half away from zero (std::round), then clamp.
int8_t reference_int8(float v, float scale) {
  const float r = std::round(v / scale);
  return static_cast<int8_t>(std::clamp(r, -127.0f, 127.0f));
}

TEST(Quantize, VectorisedRoundingEqualsStdRoundEverywhere) {
  // Every float quotient of the ties, their neighbours, the clamp edges and random values, for
  // several scales: the truncation-based rule agrees with std::round bit for bit.
  std::vector<float> values = {0.0f,
                               -0.0f,
                               0.5f,
                               -0.5f,
                               1.5f,
                               -1.5f,
                               126.5f,
                               -126.5f,
                               127.0f,
                               127.5f,
                               -127.5f,
                               128.0f,
                               -128.0f,
                               1e30f,
                               -1e30f,
                               std::numeric_limits<float>::max(),
                               -std::numeric_limits<float>::max(),
                               std::numeric_limits<float>::denorm_min()};
  for (float k = -130.0f; k <= 130.0f; k += 0.5f) {
    values.push_back(k);
    values.push_back(std::nextafter(k, 1e9f));
    values.push_back(std::nextafter(k, -1e9f));
  }
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> u(-300.0f, 300.0f);
  for (int i = 0; i < 200000; ++i) values.push_back(u(rng));
  for (const float scale : {1.0f, 0.01f, 0.37f, 2.54f / 127, 3.0e-5f}) {
    for (const float v : values) {
      const float x = v * scale;  // quotients near v
      ASSERT_EQ(model::quantize_int8(x, scale), reference_int8(x, scale))
          << "v=" << x << " scale=" << scale;
    }
  }
}

TEST(Quantize, ThreadedQuantizationMatchesTheSerialRule) {
  // A matrix large enough to be quantized on every thread: each token's scale and values follow
  // the one-element rule; a non-finite value anywhere is still refused.
  std::mt19937 rng(11);
  std::normal_distribution<float> n(0.0f, 3.0f);
  model::Activations x(300, 517);
  for (int64_t i = 0; i < x.size(); ++i) x.data()[i] = n(rng);
  const model::QuantizedTokens q = model::quantize_tokens(x);
  for (int64_t t = 0; t < x.cols(); ++t) {
    const std::span<const float> col(x.data() + t * x.rows(), static_cast<size_t>(x.rows()));
    const float scale = model::int8_scale(col);
    ASSERT_EQ(q.scales[static_cast<size_t>(t)], scale);
    for (int64_t j = 0; j < x.rows(); ++j) {
      ASSERT_EQ(q.values[static_cast<size_t>(t * x.rows() + j)], reference_int8(x(j, t), scale));
    }
  }
  const std::vector<int8_t> rows = model::feature_rows(q);
  for (int64_t t = 0; t < x.cols(); t += 7) {
    for (int64_t j = 0; j < x.rows(); ++j) {
      ASSERT_EQ(rows[static_cast<size_t>(j * x.cols() + t)],
                q.values[static_cast<size_t>(t * x.rows() + j)]);
    }
  }
  x(17, 400) = std::numeric_limits<float>::quiet_NaN();
  EXPECT_THROW(model::quantize_tokens(x), model::ModelError);
  x(17, 400) = std::numeric_limits<float>::infinity();
  EXPECT_THROW(model::quantize_tokens(x), model::ModelError);
}

}  // namespace
