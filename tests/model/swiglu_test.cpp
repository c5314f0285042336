// SwiGLU against hand computations.
#include "model/swiglu.h"

#include <gtest/gtest.h>

#include <cmath>

#include "model/error.h"

namespace {

TEST(SwiGlu, RefusesDifferentShapes) {
  model::Activations a(2, 1), b(3, 1), out;
  EXPECT_THROW(model::swiglu_forward(a, b, out), model::ModelError);
}

}  // namespace
