// Next-token cross-entropy against hand computations.
#include "model/cross_entropy.h"

#include <gtest/gtest.h>

#include <cmath>

#include "model/error.h"

namespace {

TEST(CrossEntropy, MeanOverPredictedPositions) {
  // Sequence {0, 1, 3}: position 0 predicts 1, position 1 predicts 3. Sequence {2} predicts
  // nothing.
  const model::TokenBatch batch({{0, 1, 3}, {2}});
  model::Matrix logits = model::Matrix::Zero(4, 4);
  logits(0, 1) = std::log(3.0f);  // softmax(0, ln 3, 0, 0)[1] = 1/2
  logits(3, 0) = 100;             // the last row of each sequence is ignored
  model::CrossEntropyCache cache;
  const double loss = model::cross_entropy_forward(logits, batch, &cache);
  // -log(1/2) and -log(1/4) (uniform row).
  EXPECT_NEAR(loss, (std::log(2.0) + std::log(4.0)) / 2, 1e-7);
  EXPECT_EQ(cache.predicted, 2);
  EXPECT_NEAR(cache.log_sum_exp(1), std::log(4.0), 1e-7);
}

TEST(CrossEntropy, RefusesABatchWithNothingToPredict) {
  EXPECT_THROW(
      model::cross_entropy_forward(model::Matrix::Zero(2, 4), model::TokenBatch({{1}, {2}})),
      model::ModelError);
  EXPECT_THROW(model::cross_entropy_forward(model::Matrix::Zero(3, 4), model::TokenBatch({{1, 2}})),
               model::ModelError);
}

}  // namespace
