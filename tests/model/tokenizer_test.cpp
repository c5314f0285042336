#include "model/byte_tokenizer.h"

#include <gtest/gtest.h>

#include <vector>

#include "model/error.h"
#include "model/tokenizer.h"
#include "test_util.h"

namespace {

using model::ByteTokenizer;

TEST(ByteTokenizer, NumbersBytesLikeSentencePieceByteFallback) {
  const ByteTokenizer tok(300);
  EXPECT_EQ(tok.bos_id(), 1);
  EXPECT_EQ(tok.eos_id(), 2);
  EXPECT_EQ(tok.vocab_size(), 300);
  EXPECT_EQ(tok.encode("A\n"), (std::vector<int32_t>{3 + 'A', 3 + '\n'}));
  EXPECT_EQ(tok.encode(std::string("\0\xff", 2)), (std::vector<int32_t>{3, 258}));
  EXPECT_TRUE(tok.encode("").empty());
}

TEST(ByteTokenizer, RoundTripsUtf8) {
  const ByteTokenizer tok(259);
  const std::string binary("binary\0zero\x80\xfe", 13);
  for (const std::string& text :
       std::vector<std::string>{"Patient presented with acute dyspnoea.",
                                "naïve café — 東京 🙂", "", " \t\n  x ", binary}) {
    const auto ids = tok.encode(text);
    EXPECT_EQ(ids.size(), text.size());
    EXPECT_EQ(tok.decode(ids), text);
  }
}

TEST(ByteTokenizer, DecodeSkipsControlTokensAndRejectsOutOfRangeIds) {
  const ByteTokenizer tok(1000);
  const std::vector<int32_t> ids = {1, 3 + 'h', 0, 3 + 'i', 500, 2};
  EXPECT_EQ(tok.decode(ids), "hi");
  const std::vector<int32_t> too_big = {1000};
  EXPECT_THROW(tok.decode(too_big), model::ModelError);
  const std::vector<int32_t> negative = {-1};
  EXPECT_THROW(tok.decode(negative), model::ModelError);
}

TEST(ByteTokenizer, NeedsRoomForEveryByte) {
  EXPECT_THROW(ByteTokenizer(258), model::ModelError);
  try {
    ByteTokenizer tok(100);
    ADD_FAILURE();
  } catch (const model::ModelError& e) {
    EXPECT_NE(std::string(e.what()).find("vocab_size >= 259"), std::string::npos);
  }
}

TEST(LoadTokenizer, FallsBackToBytesWithoutTokenizerModel) {
  model_test::TempDir dir;
  const auto tok = model::load_tokenizer(dir.path(), 512);
  EXPECT_NE(dynamic_cast<const ByteTokenizer*>(tok.get()), nullptr);
  EXPECT_EQ(tok->vocab_size(), 512);
  EXPECT_THROW(model::load_tokenizer(dir.path(), 32), model::ModelError);
}

TEST(LoadTokenizer, RejectsAGarbageTokenizerModel) {
  model_test::TempDir dir;
  test_support::write_file(dir / "tokenizer.model", "this is not a protobuf");
  try {
    model::load_tokenizer(dir.path(), 512);
    ADD_FAILURE();
  } catch (const model::ModelError& e) {
    EXPECT_NE(std::string(e.what()).find("tokenizer.model"), std::string::npos) << e.what();
  }
}

}  // namespace
