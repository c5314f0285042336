// Trains a small SentencePiece model in-process (nothing is downloaded) with Llama's tokenizer
// settings (BPE, byte fallback, identity normalisation, no whitespace squashing) and checks
// that SentencePieceTokenizer round-trips text through it.
#include <gtest/gtest.h>
#include <sentencepiece_trainer.h>
#include <unistd.h>

#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "model/byte_tokenizer.h"
#include "model/error.h"
#include "model/sentencepiece_tokenizer.h"
#include "model/tokenizer.h"
#include "test_util.h"

namespace {

constexpr int kVocabSize = 400;

class SentencePiece : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new std::filesystem::path(std::filesystem::path(::testing::TempDir()) /
                                     ("fedlora_model_spm_" + std::to_string(::getpid())));
    std::filesystem::create_directories(*dir_);
    const std::vector<std::string> words = {
        "the",     "patient", "was",       "admitted", "with",    "acute",    "chest",
        "pain",    "and",     "shortness", "of",       "breath",  "blood",    "pressure",
        "normal",  "heart",   "rate",      "elevated", "history", "diabetes", "treated",
        "insulin", "follow",  "up",        "in",       "two",     "weeks",    "discharged",
        "home",    "stable",  "condition", "mg",       "daily",   "dose",     "reported"};
    std::mt19937_64 rng(99);
    std::uniform_int_distribution<size_t> pick(0, words.size() - 1), len(4, 14), num(0, 999);
    std::ofstream corpus(*dir_ / "corpus.txt");
    for (int line = 0; line < 3000; ++line) {
      const size_t n = len(rng);
      for (size_t i = 0; i < n; ++i) corpus << (i ? " " : "") << words[pick(rng)];
      corpus << " " << num(rng) << ".\n";
    }
    corpus.close();
    const std::string args = "--input=" + (*dir_ / "corpus.txt").string() +
                             " --model_prefix=" + (*dir_ / "tokenizer").string() +
                             " --vocab_size=" + std::to_string(kVocabSize) +
                             " --model_type=bpe --byte_fallback=true --character_coverage=1.0"
                             " --normalization_rule_name=identity --remove_extra_whitespaces=false"
                             " --split_digits=true --allow_whitespace_only_pieces=true"
                             " --num_threads=1";
    const auto status = sentencepiece::SentencePieceTrainer::Train(args);
    ASSERT_TRUE(status.ok()) << status.ToString();
    std::filesystem::rename(*dir_ / "tokenizer.model", *dir_ / model::kSentencePieceModelFile);
  }
  static void TearDownTestSuite() {
    std::error_code ec;
    std::filesystem::remove_all(*dir_, ec);
    delete dir_;
  }
  static const std::filesystem::path& dir() { return *dir_; }

 private:
  static std::filesystem::path* dir_;
};

std::filesystem::path* SentencePiece::dir_ = nullptr;

TEST_F(SentencePiece, RoundTripsText) {
  const model::SentencePieceTokenizer tok(dir() / model::kSentencePieceModelFile);
  EXPECT_EQ(tok.vocab_size(), kVocabSize);
  EXPECT_EQ(tok.bos_id(), 1);
  EXPECT_EQ(tok.eos_id(), 2);
  for (const std::string text :
       {"the patient was admitted with acute chest pain", "blood pressure 120/80, heart rate 72.",
        "  two  spaces and\ttabs\nnew lines ", "naïve café — 東京 🙂", "Z", ""}) {
    const auto ids = tok.encode(text);
    for (int32_t id : ids) {
      EXPECT_GE(id, 0);
      EXPECT_LT(id, kVocabSize);
    }
    EXPECT_EQ(tok.decode(ids), text);
  }
}

TEST_F(SentencePiece, MergesKnownWordsAndFallsBackToLlamaByteIds) {
  const model::SentencePieceTokenizer tok(dir() / model::kSentencePieceModelFile);
  const std::string known = "the patient was discharged home in stable condition";
  EXPECT_LT(tok.encode(known).size(), known.size() / 2);  // learned merges, not bytes
  // An emoji the corpus never saw becomes its UTF-8 bytes, numbered as the byte tokenizer
  // numbers them (3 + byte), just as in Llama's tokenizer.model.
  const std::string emoji = "\xF0\x9F\x99\x82";
  const auto ids = tok.encode(emoji);
  ASSERT_GE(ids.size(), 4u);
  const std::vector<int32_t> tail(ids.end() - 4, ids.end());
  EXPECT_EQ(tail, model::ByteTokenizer(kVocabSize).encode(emoji));
}

TEST_F(SentencePiece, LoadTokenizerPicksItAndChecksTheVocabulary) {
  const auto tok = model::load_tokenizer(dir(), 512);
  EXPECT_NE(dynamic_cast<const model::SentencePieceTokenizer*>(tok.get()), nullptr);
  EXPECT_EQ(tok->decode(tok->encode("follow up in two weeks")), "follow up in two weeks");
  EXPECT_THROW(model::load_tokenizer(dir(), kVocabSize - 1), model::ModelError);
  const std::vector<int32_t> bad = {kVocabSize};
  EXPECT_THROW(tok->decode(bad), model::ModelError);
}

TEST(SentencePieceFile, MissingFileIsAnError) {
  EXPECT_THROW(model::SentencePieceTokenizer("/nonexistent/tokenizer.model"), model::ModelError);
}

}  // namespace
