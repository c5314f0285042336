// The tokenizer.json reader (byte-level BPE, Llama-3 pre-tokenizer) against Hugging Face's own
// tokenizers library: reference/bpe_tokenizer/expected.json holds the ids, pre-tokenizer pieces
// and decodings that library gives for the fixture's tokenizer.json (see make_fixture.js there:
// clinical text, accents, CJK, emoji, whitespace runs, newlines, digit runs, contractions,
// special tokens). Small tokenizer.json files made here test merge order and refusals.
#include "model/hf_tokenizer.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "model/error.h"
#include "test_util.h"

namespace {

using model_test::TempDir;
using nlohmann::json;

const std::filesystem::path kFixture =
    std::filesystem::path(FEDLORA_REFERENCE_DIR) / "bpe_tokenizer";

json read_json(const std::filesystem::path& p) {
  return json::parse(test_support::slurp(p));
}

// GPT-2's byte -> printable character map, written out again here (not the library's).
std::string byte_level(std::string_view bytes) {
  std::string out;
  for (unsigned char b : bytes) {
    int cp = b;
    if (!((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || b >= 174)) {
      int n = 0;  // rank of b among the non-printable bytes
      for (int x = 0; x < b; ++x) {
        if (!((x >= 33 && x <= 126) || (x >= 161 && x <= 172) || x >= 174)) ++n;
      }
      cp = 256 + n;
    }
    if (cp < 0x80) {
      out += static_cast<char>(cp);
    } else {
      out += static_cast<char>(0xC0 | (cp >> 6));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    }
  }
  return out;
}

std::vector<int32_t> ids_of(const json& a) {
  return a.get<std::vector<int32_t>>();
}

// The fixture tokenizer.json, possibly edited, in a fresh model directory.
std::filesystem::path fixture_dir(const TempDir& dir, const std::function<void(json&)>& edit = {}) {
  json t = read_json(kFixture / "tokenizer.json");
  if (edit) edit(t);
  const auto d = dir / "tok";
  std::filesystem::create_directories(d);
  test_support::write_file(d / "tokenizer.json", t.dump());
  return d;
}

TEST(HfTokenizer, MatchesHuggingFaceTokenizersOnTheFixture) {
  TempDir dir;
  const json expected = read_json(kFixture / "expected.json");
  const model::HfTokenizer tok(fixture_dir(dir) / "tokenizer.json");
  EXPECT_EQ(tok.vocab_size(), expected["vocab_size"].get<int64_t>());
  EXPECT_EQ(tok.bos_id(), tok.token_to_id("<|begin_of_text|>"));
  EXPECT_EQ(tok.eos_id(), tok.token_to_id("<|end_of_text|>"));
  ASSERT_GE(expected["cases"].size(), 20u);
  for (const json& c : expected["cases"]) {
    const std::string text = c["text"];
    const std::vector<int32_t> ids = ids_of(c["ids"]);
    EXPECT_EQ(tok.encode(text), ids) << text;
    EXPECT_EQ(tok.decode(ids), c["decoded"].get<std::string>()) << text;
    if (c["pieces"].is_null()) continue;  // texts with added tokens: split before pre-tokenizing
    std::vector<std::string> pieces;
    for (std::string_view p : model::llama3_pretokenize(text)) pieces.push_back(byte_level(p));
    EXPECT_EQ(pieces, c["pieces"].get<std::vector<std::string>>()) << text;
  }
}

TEST(HfTokenizer, MergesAsPairsEncodeAsMergesAsStrings) {
  TempDir dir;
  const json expected = read_json(kFixture / "expected.json");
  const auto d = fixture_dir(dir, [](json& t) {
    json pairs = json::array();
    for (const json& m : t["model"]["merges"]) {
      const std::string s = m;
      pairs.push_back({s.substr(0, s.find(' ')), s.substr(s.find(' ') + 1)});
    }
    t["model"]["merges"] = pairs;
  });
  const model::HfTokenizer tok(d / "tokenizer.json");
  for (const json& c : expected["cases"]) {
    EXPECT_EQ(tok.encode(c["text"].get<std::string>()), ids_of(c["ids"])) << c["text"];
  }
}

TEST(HfTokenizer, WithoutIgnoreMergesWholeWordsAreMerged) {
  TempDir dir;
  const json expected = read_json(kFixture / "expected.json");
  const auto d = fixture_dir(dir, [](json& t) { t["model"]["ignore_merges"] = false; });
  const model::HfTokenizer tok(d / "tokenizer.json");
  int differing = 0;
  for (const json& c : expected["cases"]) {
    EXPECT_EQ(tok.encode(c["text"].get<std::string>()), ids_of(c["ids_without_ignore_merges"]))
        << c["text"];
    differing += c["ids"] != c["ids_without_ignore_merges"];
  }
  EXPECT_GE(differing, 1);  // the fixture does exercise ignore_merges
}

TEST(HfTokenizer, SpecialTokensDecodeToNothingOthersToTheirText) {
  TempDir dir;
  const model::HfTokenizer tok(fixture_dir(dir) / "tokenizer.json");
  const int32_t mrn = tok.token_to_id("[MRN]"), eot = tok.token_to_id("<|eot_id|>");
  ASSERT_GE(mrn, 0);
  ASSERT_GE(eot, 0);
  EXPECT_EQ(tok.encode("[MRN]<|eot_id|>"), (std::vector<int32_t>{mrn, eot}));
  const std::vector<int32_t> ids = {tok.bos_id(), mrn, eot, tok.eos_id()};
  EXPECT_EQ(tok.decode(ids), "[MRN]");
  const std::vector<int32_t> bad = {static_cast<int32_t>(tok.vocab_size())};
  EXPECT_THROW(tok.decode(bad), model::ModelError);
  const std::vector<int32_t> negative = {-1};
  EXPECT_THROW(tok.decode(negative), model::ModelError);
  // Any byte string round-trips, even invalid UTF-8.
  const std::string bytes("\xff\xfe ok \xc3", 7);
  EXPECT_EQ(tok.decode(tok.encode(bytes)), bytes);
}

TEST(HfTokenizer, AnyTextRoundTripsAndLongRunsStayOnePiece) {
  TempDir dir;
  const model::HfTokenizer tok(fixture_dir(dir) / "tokenizer.json");
  std::mt19937 rng(7);
  const std::string alphabet[] = {
      "a",          "Z",  " ",     "  ",  "\n", "\r\n",     "\t",           "7",
      "42",         "'s", "'",     ".",   "!?", "\xc3\xa9", "\xe6\x82\xa3", "\xf0\x9f\x98\x80",
      "<|eot_id|>", "<|", "[MRN]", "\xff"};
  for (int round = 0; round < 200; ++round) {
    std::string text;
    const int n = static_cast<int>(rng() % 40);
    for (int k = 0; k < n; ++k) text += alphabet[rng() % std::size(alphabet)];
    const auto ids = tok.encode(text);
    for (int32_t id : ids) ASSERT_LT(id, tok.vocab_size());
    // Special tokens decode to nothing: compare with them taken out of the text.
    std::string plain = text;
    for (size_t at; (at = plain.find("<|eot_id|>")) != std::string::npos;) plain.erase(at, 10);
    EXPECT_EQ(tok.decode(ids), plain) << text;
    std::string joined;
    for (std::string_view p : model::llama3_pretokenize(text)) joined += p;
    EXPECT_EQ(joined, text);
  }
  // 100 000 spaces before a word: one piece of 99 999 spaces, then " x".
  const std::string spaces(100000, ' ');
  const auto pieces = model::llama3_pretokenize(spaces + "x");
  ASSERT_EQ(pieces.size(), 2u);
  EXPECT_EQ(pieces[0].size(), 99999u);
  EXPECT_EQ(tok.decode(tok.encode(spaces + "x")), spaces + "x");
}

// A tokenizer.json over the letters a, b, c, d (plus whatever `vocab` adds) and `merges`.
json small_tokenizer(const json& extra_vocab, const json& merges) {
  json vocab = {{"a", 0}, {"b", 1}, {"c", 2}, {"d", 3}, {"Ġ", 4}};
  for (const auto& [k, v] : extra_vocab.items()) vocab[k] = v;
  return {
      {"added_tokens",
       {{{"id", 100}, {"content", "<s>"}, {"special", true}},
        {{"id", 101}, {"content", "</s>"}, {"special", true}}}},
      {"normalizer", nullptr},
      {"pre_tokenizer", {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", false}}},
      {"decoder", {{"type", "ByteLevel"}}},
      {"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", merges}}},
  };
}

std::vector<int32_t> encode_with(const TempDir& dir, const json& t, const std::string& text) {
  test_support::write_file(dir / "tokenizer.json", t.dump());
  return model::HfTokenizer(dir / "tokenizer.json").encode(text);
}

TEST(HfTokenizer, LowestRankMergesFirstLeftmostAmongEquals) {
  TempDir dir;
  const json v = {{"ab", 10}, {"bc", 11}, {"abc", 12}, {"aa", 13}, {"aaa", 14}};
  // "b c" outranks "a b": abc -> a bc -> abc via "a bc".
  EXPECT_EQ(encode_with(dir, small_tokenizer(v, {"b c", "a b", "a bc"}), "abc"),
            (std::vector<int32_t>{12}));
  // "a b" outranks "b c": abc -> ab c, and there is no "ab c" merge.
  EXPECT_EQ(encode_with(dir, small_tokenizer(v, {"a b", "b c", "a bc"}), "abc"),
            (std::vector<int32_t>{10, 2}));
  // aaa with only "a a": the leftmost pair merges first.
  EXPECT_EQ(encode_with(dir, small_tokenizer(v, {"a a"}), "aaa"), (std::vector<int32_t>{13, 0}));
  // No Split step: the whole text is one piece (the space is Ġ, id 4).
  EXPECT_EQ(encode_with(dir, small_tokenizer(v, {"a b"}), "ab ab"),
            (std::vector<int32_t>{10, 4, 10}));
  // Characters outside the vocabulary are dropped when there is no unk_token, as tokenizers does.
  EXPECT_EQ(encode_with(dir, small_tokenizer(v, json::array()), "axb"),
            (std::vector<int32_t>{0, 1}));
  // <s> / </s> are BOS / EOS when there is no <|begin_of_text|>.
  const model::HfTokenizer tok(dir / "tokenizer.json");
  EXPECT_EQ(tok.bos_id(), 100);
  EXPECT_EQ(tok.eos_id(), 101);
  EXPECT_EQ(tok.vocab_size(), 102);
}

TEST(HfTokenizer, TokenizerConfigNamesBosAndEos) {
  TempDir dir;
  json t = small_tokenizer(json::object(), json::array());
  t["added_tokens"].push_back({{"id", 102}, {"content", "<|eot_id|>"}, {"special", true}});
  test_support::write_file(dir / "tokenizer.json", t.dump());
  test_support::write_file(dir / "tokenizer_config.json",
                           R"({"bos_token": "</s>", "eos_token": {"content": "<|eot_id|>"}})");
  const model::HfTokenizer tok(dir / "tokenizer.json");
  EXPECT_EQ(tok.bos_id(), 101);
  EXPECT_EQ(tok.eos_id(), 102);
}

void expect_refused(const TempDir& dir, const std::string& text, const std::string& needle) {
  test_support::write_file(dir / "tokenizer.json", text);
  try {
    model::HfTokenizer tok(dir / "tokenizer.json");
    ADD_FAILURE() << "accepted; expected an error containing " << needle;
  } catch (const model::ModelError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find(needle), std::string::npos) << what;
    EXPECT_NE(what.find("tokenizer.json"), std::string::npos) << what;
  }
}

TEST(HfTokenizer, RefusesWhatItDoesNotImplement) {
  TempDir dir;
  const json ok = small_tokenizer(json::object(), json::array());
  expect_refused(dir, "{not json", "not valid JSON");
  expect_refused(dir, "[1, 2]", "not a JSON object");
  json t = ok;
  t["normalizer"] = {{"type", "NFC"}};
  expect_refused(dir, t.dump(), "normalizer NFC");
  t = ok;
  t["pre_tokenizer"] = {{"type", "Metaspace"}};
  expect_refused(dir, t.dump(), "pre_tokenizer Metaspace");
  t = ok;
  t["pre_tokenizer"] = {{"type", "Sequence"},
                        {"pretokenizers",
                         {{{"type", "Split"},
                           {"pattern", {{"Regex", "\\s+"}}},
                           {"behavior", "Isolated"},
                           {"invert", false}},
                          {{"type", "ByteLevel"}, {"use_regex", false}}}}};
  expect_refused(dir, t.dump(), "Split pattern");
  t = ok;
  t["pre_tokenizer"]["use_regex"] = true;
  expect_refused(dir, t.dump(), "use_regex");
  t = ok;
  t["model"]["type"] = "WordPiece";
  expect_refused(dir, t.dump(), "model type WordPiece");
  t = ok;
  t["model"]["byte_fallback"] = true;
  expect_refused(dir, t.dump(), "byte_fallback");
  t = ok;
  t["model"]["merges"] = {"a x"};
  expect_refused(dir, t.dump(), "not in the vocab");
  t = ok;
  t["model"]["merges"] = {"a b"};  // "ab" is not in the vocab
  expect_refused(dir, t.dump(), "not in the vocab");
  t = ok;
  t["model"]["merges"] = {"abc"};
  expect_refused(dir, t.dump(), "two tokens separated by one space");
  t = ok;
  t["model"]["merges"] = json::array({json::array({"a"})});
  expect_refused(dir, t.dump(), "neither");
  t = ok;
  t["model"]["vocab"]["e"] = 0;
  expect_refused(dir, t.dump(), "vocab id 0");
  t = ok;
  t["model"]["vocab"]["e"] = -3;
  expect_refused(dir, t.dump(), "not an integer in");
  t = ok;
  t["model"]["vocab"]["e"] = int64_t{1} << 40;
  expect_refused(dir, t.dump(), "not an integer in");
  t = ok;
  t["added_tokens"][0]["id"] = 2;
  expect_refused(dir, t.dump(), "takes id 2");
  t = ok;
  t["added_tokens"][0]["lstrip"] = true;
  expect_refused(dir, t.dump(), "lstrip");
  t = ok;
  t["added_tokens"] = json::array();
  expect_refused(dir, t.dump(), "no BOS or EOS");
  t = ok;
  t.erase("model");
  expect_refused(dir, t.dump(), "no \"model\"");
}

TEST(LoadTokenizer, PicksTokenizerJsonAndRefusesABadOne) {
  TempDir dir;
  const auto d = fixture_dir(dir);
  EXPECT_STREQ(model::tokenizer_kind(d), "tokenizer.json");
  const auto tok = model::load_tokenizer(d, 664);
  EXPECT_EQ(tok->encode("Patient"), (std::vector<int32_t>{344}));
  EXPECT_THROW(model::load_tokenizer(d, 663), model::ModelError);  // ids do not fit the model
  // An unsupported tokenizer.json is an error, not a silent fallback to bytes.
  test_support::write_file(d / "tokenizer.json", R"({"model": {"type": "Unigram"}})");
  EXPECT_STREQ(model::tokenizer_kind(d), "tokenizer.json");
  try {
    model::load_tokenizer(d, 100000);
    ADD_FAILURE() << "accepted an unsupported tokenizer.json";
  } catch (const model::ModelError& e) {
    EXPECT_NE(std::string(e.what()).find("tokenizer.json: model type Unigram is not supported"),
              std::string::npos)
        << e.what();
  }
}

}  // namespace
