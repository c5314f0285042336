// JSON-lines loading, tokenization into examples, shuffled batches and Poisson sampling.
#include "model/dataset.h"

#include <gtest/gtest.h>

#include <algorithm>

#include <cmath>
#include <random>
#include <set>
#include <string>

#include "model/byte_tokenizer.h"
#include "model/error.h"
#include "test_support/expect_error.h"
#include "test_util.h"

namespace {

using model_test::TempDir;

// Expects `f` to throw a model::ModelError whose message contains `needle` and is one line.
template <class F>
void expect_error(F&& f, const std::string& needle) {
  test_support::expect_error<model::ModelError>(std::forward<F>(f), needle);
}

TEST(Jsonl, ReadsTextsSkippingBlankLines) {
  TempDir dir;
  const auto path = dir / "d.jsonl";
  test_support::write_file(path,
                           "\xEF\xBB\xBF{\"text\": \"first\\nline\", \"id\": 1}\r\n"
                           "\n   \n"
                           "{\"text\": \"caf\\u00e9\"}\n"
                           "{\"text\": \"\"}");  // no final newline
  const auto texts = model::read_jsonl_texts(path);
  ASSERT_EQ(texts.size(), 3u);
  EXPECT_EQ(texts[0], "first\nline");
  EXPECT_EQ(texts[1], "caf\xC3\xA9");
  EXPECT_EQ(texts[2], "");
}

TEST(Jsonl, RefusesBadFilesWithLineNumbers) {
  TempDir dir;
  const auto path = dir / "d.jsonl";
  const auto read = [&] { model::read_jsonl_texts(path); };
  expect_error(read, "d.jsonl: cannot open");

  test_support::write_file(path, "");
  expect_error(read, "d.jsonl: no records");
  test_support::write_file(path, "\n  \n");
  expect_error(read, "no records");

  test_support::write_file(path, "{\"text\": \"a\"}\n\n{\"text\": \"b\"\n");
  expect_error(read, "d.jsonl:3: not valid JSON");
  test_support::write_file(path, "{\"text\": \"a\"}\n{\"body\": \"b\"}\n");
  expect_error(read, "d.jsonl:2: missing \"text\"");
  test_support::write_file(path, "{\"text\": 5}\n");
  expect_error(read, "d.jsonl:1: \"text\" is not a string");
  test_support::write_file(path, "[\"text\"]\n");
  expect_error(read, "d.jsonl:1: not a JSON object");
  test_support::write_file(path, "{\"text\": \"\xFF\"}\n");  // invalid UTF-8
  expect_error(read, "d.jsonl:1: not valid JSON");

  test_support::write_file(path, "{\"text\": \"0123456789\"}\n");
  expect_error([&] { model::read_jsonl_texts(path, 10); }, "over the limit of 10");
  EXPECT_EQ(model::read_jsonl_texts(path, 100).size(), 1u);
}

TEST(Jsonl, ReadsAndChecksMcq) {
  TempDir dir;
  const auto path = dir / "mcq.jsonl";
  test_support::write_file(path,
                           "{\"question\": \"Q1?\", \"options\": [\"a\", \"b\", \"c\"], "
                           "\"answer\": 2}\n");
  const auto qs = model::read_mcq_jsonl(path);
  ASSERT_EQ(qs.size(), 1u);
  EXPECT_EQ(qs[0].question, "Q1?");
  EXPECT_EQ(qs[0].options, (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_EQ(qs[0].answer, 2);

  const auto read = [&] { model::read_mcq_jsonl(path); };
  const std::string ok = "{\"question\": \"Q\", \"options\": [\"a\", \"b\"], \"answer\": 0}\n";
  test_support::write_file(path, ok + "{\"question\": \"Q\", \"options\": [\"a\", \"b\"], "
                                      "\"answer\": 2}\n");
  expect_error(read, "mcq.jsonl:2: answer 2 is not an index of the 2 options");
  test_support::write_file(path, "{\"question\": \"Q\", \"options\": [\"a\"], \"answer\": 0}\n");
  expect_error(read, "mcq.jsonl:1: fewer than two options");
  test_support::write_file(path, "{\"question\": \"Q\", \"options\": \"a\", \"answer\": 0}\n");
  expect_error(read, "missing list \"options\"");
  test_support::write_file(path, "{\"question\": \"Q\", \"options\": [\"a\", 1], \"answer\": 0}\n");
  expect_error(read, "an option is not a string");
  test_support::write_file(path,
                           "{\"question\": \"Q\", \"options\": [\"a\", \"b\"], "
                           "\"answer\": 0.5}\n");
  expect_error(read, "missing integer \"answer\"");
  test_support::write_file(path, "{\"options\": [\"a\", \"b\"], \"answer\": 0}\n");
  expect_error(read, "missing string \"question\"");
}

TEST(Tokenize, AddsBosEosAndTruncates) {
  const model::ByteTokenizer tok(300);
  using V = std::vector<int32_t>;
  EXPECT_EQ(model::tokenize_example("ab", tok, 10), (V{1, 3 + 'a', 3 + 'b', 2}));
  EXPECT_EQ(model::tokenize_example("ab", tok, 4), (V{1, 3 + 'a', 3 + 'b', 2}));
  EXPECT_EQ(model::tokenize_example("abc", tok, 3), (V{1, 3 + 'a', 3 + 'b'}));  // EOS lost
  EXPECT_EQ(model::tokenize_example("", tok, 2), (V{1, 2}));
  EXPECT_EQ(model::tokenize_example("abc", tok, 2), (V{1, 3 + 'a'}));
  expect_error([&] { model::tokenize_example("abc", tok, 1); }, "at least 2");
}

TEST(TextDataset, OneExamplePerRecordAndBatches) {
  const model::ByteTokenizer tok(300);
  const std::vector<std::string> texts = {"hello", "a", "a much longer record"};
  const model::TextDataset data(texts, tok, 8);
  ASSERT_EQ(data.size(), 3);
  EXPECT_EQ(data.example(0).size(), 7u);  // BOS + 5 + EOS
  EXPECT_EQ(data.example(1).size(), 3u);
  EXPECT_EQ(data.example(2).size(), 8u);       // truncated
  EXPECT_EQ(data.example(2).back(), 3 + ' ');  // BOS + "a much "
  EXPECT_EQ(data.token_count(), 18);

  const std::vector<int64_t> idx = {2, 0, 2};
  const model::TokenBatch batch = data.batch(idx);
  ASSERT_EQ(batch.sequence_count(), 3);
  EXPECT_EQ(batch.total_tokens(), 8 + 7 + 8);
  EXPECT_EQ(batch.spans()[1].begin, 8);
  EXPECT_EQ(batch.sequence(1)[1], 3 + 'h');
  EXPECT_EQ(data.batch(std::vector<int64_t>{}).sequence_count(), 0);

  expect_error([&] { data.batch(std::vector<int64_t>{3}); }, "outside [0, 3)");
  expect_error([&] { data.example(-1); }, "outside [0, 3)");
  expect_error([&] { model::TextDataset(std::vector<std::string>{}, tok, 8); }, "no texts");
  expect_error([&] { model::TextDataset(texts, tok, 1); }, "at least 2");
  expect_error([&] { model::TextDataset({{1, 2}, {}}); }, "example 1 is empty");
}

// A record longer than seq_len is seen through windows sharing one token: every token after
// BOS is predicted in exactly one window; a step's draw picks one window per record.
TEST(TextDataset, LongRecordsAreSeenThroughWindows) {
  const model::ByteTokenizer tok(300);
  const std::vector<std::string> texts = {"hello", "a", "a much longer record"};
  const model::TextDataset data(texts, tok, 8);
  EXPECT_EQ(data.window_count(0), 1);
  EXPECT_EQ(data.window_count(2), 3);  // BOS + 20 + EOS = 22 tokens: [0, 8), [7, 15), [14, 22)
  int64_t predicted = 0;
  for (int64_t k = 0; k < 3; ++k) predicted += static_cast<int64_t>(data.window(2, k).size()) - 1;
  EXPECT_EQ(predicted, 21);
  EXPECT_EQ(data.window(2, 1)[0], data.window(2, 0)[7]);
  EXPECT_EQ(data.window(2, 1)[1], 3 + 'l');  // "a much" | " longer record"
  EXPECT_EQ(data.window(2, 2).size(), 8u);
  EXPECT_EQ(data.window(2, 2).back(), tok.eos_id());
  expect_error([&] { data.window(2, 3); }, "outside [0, 3)");

  const std::vector<model::RecordWindow> all = data.all_windows();
  ASSERT_EQ(all.size(), 5u);
  EXPECT_EQ(all[4].record, 2);
  EXPECT_EQ(all[4].window, 2);

  // The same draw gives the same windows; over many draws every window of record 2 comes up.
  const std::vector<int64_t> idx = {2, 0};
  std::set<int32_t> second_tokens;
  for (uint64_t draw = 0; draw < 64; ++draw) {
    const model::TokenBatch a = data.batch(idx, draw);
    const model::TokenBatch b = data.batch(idx, draw);
    ASSERT_TRUE(std::ranges::equal(a.tokens(), b.tokens()));
    EXPECT_EQ(a.sequence(1).size(), 7u);  // "hello" has one window
    second_tokens.insert(a.sequence(0)[1]);
  }
  EXPECT_EQ(second_tokens.size(), 3u);  // windows 0, 1 and 2 start differently

  // A fixed sample of the windows, evenly spaced.
  const model::TextDataset two = data.window_sample(2);
  ASSERT_EQ(two.size(), 2);
  EXPECT_TRUE(std::ranges::equal(two.example(0), data.window(0, 0)));
  EXPECT_TRUE(std::ranges::equal(two.example(1), data.window(2, 0)));
  EXPECT_EQ(data.window_sample(10).size(), 5);
  expect_error([&] { data.window_sample(0); }, "at least one window");
}

TEST(ShuffledBatches, EpochsArePermutationsDroppingTheRemainder) {
  model::ShuffledBatches batches(10, 3, 7);
  EXPECT_EQ(batches.batches_per_epoch(), 3);
  std::vector<std::vector<int64_t>> epochs(3);
  for (int e = 0; e < 3; ++e) {
    EXPECT_EQ(batches.epoch(), e);
    for (int b = 0; b < 3; ++b) {
      EXPECT_EQ(batches.batch_in_epoch(), b);
      const auto batch = batches.next();
      ASSERT_EQ(batch.size(), 3u);
      epochs[static_cast<size_t>(e)].insert(epochs[static_cast<size_t>(e)].end(), batch.begin(),
                                            batch.end());
    }
    const std::set<int64_t> seen(epochs[static_cast<size_t>(e)].begin(),
                                 epochs[static_cast<size_t>(e)].end());
    EXPECT_EQ(seen.size(), 9u);  // distinct: one of the 10 is left out
    EXPECT_TRUE(*seen.begin() >= 0 && *seen.rbegin() < 10);
  }
  EXPECT_NE(epochs[0], epochs[1]);

  // The same seed replays the same order; seek() resumes mid-stream.
  model::ShuffledBatches again(10, 3, 7);
  for (int i = 0; i < 3; ++i) {
    const auto b = again.next();
    EXPECT_TRUE(std::equal(b.begin(), b.end(), epochs[0].begin() + 3 * i));
  }
  model::ShuffledBatches resumed(10, 3, 7);
  resumed.seek(1, 2);
  const auto b = resumed.next();
  EXPECT_TRUE(std::equal(b.begin(), b.end(), epochs[1].begin() + 6));
  EXPECT_EQ(resumed.epoch(), 2);

  model::ShuffledBatches other(10, 3, 8);
  EXPECT_NE(other.next(), std::vector<int64_t>(epochs[0].begin(), epochs[0].begin() + 3));

  expect_error([] { model::ShuffledBatches(10, 0, 1); }, "batch size 0");
  expect_error([] { model::ShuffledBatches(10, 11, 1); }, "batch size 11");
  expect_error([&] { resumed.seek(0, 3); }, "cannot seek");
}

// Returns the words of a fixed list, in order.
class FixedBits : public model::RandomBits {
 public:
  explicit FixedBits(std::vector<uint64_t> words) : words_(std::move(words)) {}
  uint64_t next_u64() override { return words_.at(next_++); }
  size_t used() const { return next_; }

 private:
  std::vector<uint64_t> words_;
  size_t next_ = 0;
};

TEST(PoissonSample, ThresholdIsQTimesTwoToThe64) {
  FixedBits bits({(uint64_t{1} << 63) - 1, uint64_t{1} << 63, 0, UINT64_MAX});
  EXPECT_EQ(model::poisson_sample(4, 0.5, bits), (std::vector<int64_t>{0, 2}));
  EXPECT_EQ(bits.used(), 4u);  // one word per example

  FixedBits all({UINT64_MAX, UINT64_MAX});
  EXPECT_EQ(model::poisson_sample(2, 1.0, all), (std::vector<int64_t>{0, 1}));
  FixedBits none({0, 0});
  EXPECT_TRUE(model::poisson_sample(2, 0.0, none).empty());
  EXPECT_TRUE(model::poisson_sample(0, 0.5, none).empty());

  expect_error([&] { model::poisson_sample(2, 1.5, none); }, "outside [0, 1]");
  expect_error([&] { model::poisson_sample(2, -0.1, none); }, "outside [0, 1]");
  expect_error([&] { model::poisson_sample(2, std::nan(""), none); }, "outside [0, 1]");
  expect_error([&] { model::poisson_sample(-1, 0.5, none); }, "negative");
}

TEST(PoissonSample, InclusionFrequencyIsQ) {
  // Batch sizes: n = 200000, q = 0.01 gives mean 2000, sd 44.5; allow 5 sd.
  std::mt19937_64 engine(123);
  model::UrbgRandomBits bits(engine);
  const auto big = model::poisson_sample(200000, 0.01, bits);
  EXPECT_NEAR(static_cast<double>(big.size()), 2000.0, 225.0);
  EXPECT_TRUE(std::is_sorted(big.begin(), big.end()));
  EXPECT_EQ(std::set<int64_t>(big.begin(), big.end()).size(), big.size());

  // Per example: 2000 draws at q = 0.3 give mean 600, sd 20.5 for each of 50 examples.
  std::vector<int> counts(50, 0);
  for (int t = 0; t < 2000; ++t) {
    for (int64_t i : model::poisson_sample(50, 0.3, bits)) ++counts[static_cast<size_t>(i)];
  }
  int total = 0;
  for (int c : counts) {
    EXPECT_NEAR(c, 600, 110);
    total += c;
  }
  EXPECT_NEAR(total / 100000.0, 0.3, 0.005);  // all 100000 trials: sd 0.00145

  // A 32-bit generator works through the same adapter (two words per draw).
  std::mt19937 engine32(5);
  model::UrbgRandomBits bits32(engine32);
  const auto small = model::poisson_sample(100000, 0.05, bits32);
  EXPECT_NEAR(static_cast<double>(small.size()), 5000.0, 350.0);  // sd 69
}

}  // namespace
