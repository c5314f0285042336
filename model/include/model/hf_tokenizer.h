// A Hugging Face `tokenizer.json` holding a byte-level BPE tokenizer, as Llama 3 ships it.
//
// What is understood (anything else is refused with a clear error, never silently ignored):
//   normalizer     null
//   pre_tokenizer  Sequence [Split {Regex: Llama-3's pattern, behavior Isolated, invert false},
//                            ByteLevel {add_prefix_space false, use_regex false}]
//                  or that ByteLevel alone (no split); the pattern
//                    (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|
//                    ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
//                  is matched by hand over UTF-8 code points (unicode_tables.h), leftmost-first
//                  as a backtracking regex engine matches it
//   model          {type BPE, vocab, merges ("a b" strings or ["a", "b"] pairs), ignore_merges,
//                   unk_token}; dropout, byte_fallback, fuse_unk and subword affixes refused
//   added_tokens   split out of the raw text first (leftmost-longest, as tokenizers does);
//                  lstrip / rstrip / single_word refused
//   decoder        ByteLevel (or absent); post_processor ignored: encode() adds no BOS
// Encoding a piece: with ignore_merges a piece that is itself in the vocabulary is one token;
// otherwise its byte-level characters are merged pair by pair, lowest merge rank first (the
// leftmost among equals), as tokenizers' BPE does. Characters missing from the vocabulary
// become unk_token, or are dropped when there is none (as tokenizers does).
#pragma once

#include <array>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "model/tokenizer.h"

namespace model {

// Largest tokenizer.json read (Llama 3's is about 9 MB).
inline constexpr uint64_t kMaxTokenizerJsonBytes = uint64_t{256} << 20;
// Largest id accepted in a tokenizer.json.
inline constexpr int64_t kMaxTokenizerId = int64_t{1} << 24;

class HfTokenizer : public Tokenizer {
 public:
  // Reads `path`. BOS and EOS are the tokens `bos_token` / `eos_token` of tokenizer_config.json
  // beside it when that file names them, else <|begin_of_text|> / <|end_of_text|>, else <s> /
  // </s>. Throws model::ModelError naming the file for unreadable JSON, a feature outside the list
  // above, a duplicate or out-of-range id, a merge whose parts or result are not in the
  // vocabulary, or no BOS/EOS token.
  explicit HfTokenizer(const std::filesystem::path& path);

  std::vector<int32_t> encode(std::string_view text) const override;
  // Special added tokens decode to nothing; ids that no token has decode to nothing too.
  std::string decode(std::span<const int32_t> ids) const override;
  int32_t bos_id() const override { return bos_id_; }
  int32_t eos_id() const override { return eos_id_; }
  // One past the largest id (vocabulary and added tokens).
  int64_t vocab_size() const override { return vocab_size_; }

  // The id of a token (vocabulary or added), or -1.
  int32_t token_to_id(std::string_view token) const;

 private:
  struct AddedToken {
    std::string content;
    int32_t id;
    bool special;
  };
  struct MergeResult {
    uint32_t rank;
    int32_t id;
  };

  void encode_piece(std::string_view piece, std::vector<int32_t>& out) const;
  void encode_ordinary(std::string_view text, std::vector<int32_t>& out) const;

  std::filesystem::path path_;
  std::unordered_map<std::string, int32_t> vocab_;
  std::vector<std::string> id_to_token_;              // "" where no token has the id
  std::vector<bool> special_;                         // special added tokens, by id
  std::unordered_map<uint64_t, MergeResult> merges_;  // (left id << 32 | right id) -> result
  std::vector<AddedToken> added_;                     // longest first
  std::array<bool, 256> starts_added_{};              // first bytes of added tokens
  bool split_ = false;                                // the Llama-3 Split pre-tokenizer
  bool ignore_merges_ = false;
  int32_t unk_id_ = -1;
  int32_t bos_id_ = -1, eos_id_ = -1;
  int64_t vocab_size_ = 0;
};

// The Llama-3 pre-tokenizer split of `text` (exposed for tests): the pieces, in order, that
// together are the whole text.
std::vector<std::string_view> llama3_pretokenize(std::string_view text);

}  // namespace model
