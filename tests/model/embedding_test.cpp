// Token embedding lookup.
#include "model/embedding.h"

#include <gtest/gtest.h>

namespace {

TEST(Embedding, ColumnsAreTableRows) {
  model::Matrix table(3, 2);
  table << 1, 2, 3, 4, 5, 6;
  const int32_t ids[] = {2, 0, 2};
  model::Activations x;
  model::embedding_forward(table, ids, x);
  ASSERT_EQ(x.rows(), 2);
  ASSERT_EQ(x.cols(), 3);
  EXPECT_EQ(x(0, 0), 5);
  EXPECT_EQ(x(1, 0), 6);
  EXPECT_EQ(x(0, 1), 1);
  EXPECT_EQ(x(1, 2), 6);
}

}  // namespace
