// Token batches: layout and validation.
#include "model/token_batch.h"

#include <gtest/gtest.h>

#include <string>

#include "model/error.h"

namespace {

model::LlamaConfig config() {
  model::LlamaConfig c;
  c.vocab_size = 10;
  c.max_position_embeddings = 4;
  return c;
}

std::string refusal(const model::TokenBatch& batch) {
  try {
    model::validate_token_batch(batch, config());
  } catch (const model::ModelError& e) {
    return e.what();
  }
  return "";
}

TEST(TokenBatch, ConcatenatesSequences) {
  const model::TokenBatch b({{1, 2, 3}, {4}, {5, 6}});
  EXPECT_EQ(b.total_tokens(), 6);
  EXPECT_EQ(b.sequence_count(), 3);
  EXPECT_EQ(b.max_length(), 3);
  ASSERT_EQ(b.spans().size(), 3u);
  EXPECT_EQ(b.spans()[2].begin, 4);
  EXPECT_EQ(b.spans()[2].length, 2);
  EXPECT_EQ(b.sequence(1)[0], 4);
  EXPECT_EQ(b.tokens()[5], 6);
  EXPECT_NO_THROW(model::validate_token_batch(b, config()));
}

TEST(TokenBatch, RefusesWhatAModelCannotRun) {
  EXPECT_NE(refusal(model::TokenBatch()).find("no sequence"), std::string::npos);
  EXPECT_NE(refusal(model::TokenBatch({{1}, {}})).find("sequence 1 of the batch is empty"),
            std::string::npos);
  EXPECT_NE(refusal(model::TokenBatch({{1, 2, 3, 4, 5}})).find("max_position_embeddings 4"),
            std::string::npos);
  EXPECT_NE(refusal(model::TokenBatch({{1, 10}})).find("token id 10"), std::string::npos);
  EXPECT_NE(refusal(model::TokenBatch({{2, -1}})).find("token id -1"), std::string::npos);
}

}  // namespace
