// RMSNorm against hand computations.
#include "model/rms_norm.h"

#include <gtest/gtest.h>

#include <cmath>

namespace {

TEST(RmsNorm, MatchesHandComputation) {
  model::Activations x(2, 2);
  x << 3, 1,  //
      4, -1;  // token 0 = (3, 4), token 1 = (1, -1)
  model::Vector w(2);
  w << 1, 2;
  model::Activations y;
  model::RmsNormCache cache;
  model::rms_norm_forward(x, w, 0.0f, y, &cache);
  // token 0: mean square 12.5; token 1: mean square 1.
  const float inv0 = 1 / std::sqrt(12.5f);
  EXPECT_FLOAT_EQ(y(0, 0), 3 * inv0);
  EXPECT_FLOAT_EQ(y(1, 0), 2 * 4 * inv0);
  EXPECT_FLOAT_EQ(y(0, 1), 1);
  EXPECT_FLOAT_EQ(y(1, 1), -2);
  ASSERT_EQ(cache.inv_rms.size(), 2);
  EXPECT_FLOAT_EQ(cache.inv_rms(0), inv0);
  EXPECT_FLOAT_EQ(cache.inv_rms(1), 1);
}

TEST(RmsNorm, EpsilonIsAddedToTheMeanSquare) {
  model::Activations x(4, 1);
  x << 1, 1, 1, 1;
  model::Vector w = model::Vector::Ones(4);
  model::Activations y;
  model::rms_norm_forward(x, w, 3.0f, y);  // 1 / sqrt(1 + 3) = 0.5
  for (int i = 0; i < 4; ++i) EXPECT_FLOAT_EQ(y(i, 0), 0.5f);
}

TEST(RmsNorm, ZeroTokenStaysZero) {
  model::Activations x = model::Activations::Zero(3, 1);
  model::Activations y;
  model::rms_norm_forward(x, model::Vector::Ones(3), 1e-5f, y);
  EXPECT_EQ(y.cwiseAbs().maxCoeff(), 0.0f);
}

}  // namespace
