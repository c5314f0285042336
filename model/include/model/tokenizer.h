// Text <-> token ids.
//
// Three implementations: SentencePieceTokenizer (the model directory's tokenizer.model, as Llama
// 1/2 and their derivatives ship it), HfTokenizer (a Hugging Face tokenizer.json with byte-level
// BPE, as Llama 3 ships it) and ByteTokenizer (one token per byte, numbered as SentencePiece's
// byte fallback numbers them). load_tokenizer picks one for a model directory.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace model {

inline constexpr char kSentencePieceModelFile[] = "tokenizer.model";
inline constexpr char kHfTokenizerFile[] = "tokenizer.json";

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;

  // The ids of `text`, without BOS or EOS (callers add them where the model wants them).
  virtual std::vector<int32_t> encode(std::string_view text) const = 0;
  // The text of `ids`; control tokens (BOS, EOS, padding) decode to nothing. Throws
  // model::ModelError for an id outside [0, vocab_size()).
  virtual std::string decode(std::span<const int32_t> ids) const = 0;

  virtual int32_t bos_id() const = 0;
  virtual int32_t eos_id() const = 0;
  // Ids are in [0, vocab_size()).
  virtual int64_t vocab_size() const = 0;
};

// The tokenizer of the model directory `dir` for a model with `model_vocab_size` embedding
// rows: SentencePiece when `dir` holds tokenizer.model (Llama 1/2 directories also carry a
// tokenizer.json; the SentencePiece model is the exact one), else HfTokenizer when it holds
// tokenizer.json, else the byte tokenizer. Throws model::ModelError when the tokenizer's ids do not
// fit the model's vocabulary, or the file is unreadable or uses a feature that is not
// implemented (never a silent fallback to bytes).
std::unique_ptr<Tokenizer> load_tokenizer(const std::filesystem::path& dir,
                                          int64_t model_vocab_size);

// Which tokenizer load_tokenizer picks for `dir`: "sentencepiece", "tokenizer.json" or "byte".
const char* tokenizer_kind(const std::filesystem::path& dir);

}  // namespace model
