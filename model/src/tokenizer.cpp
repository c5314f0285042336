#include "model/tokenizer.h"

#include "model/byte_tokenizer.h"
#include "model/error.h"
#include "model/hf_tokenizer.h"
#include "model/sentencepiece_tokenizer.h"

namespace model {

const char* tokenizer_kind(const std::filesystem::path& dir) {
  std::error_code ec;
  if (std::filesystem::exists(dir / kSentencePieceModelFile, ec)) return "sentencepiece";
  if (std::filesystem::exists(dir / kHfTokenizerFile, ec)) return "tokenizer.json";
  return "byte";
}

std::unique_ptr<Tokenizer> load_tokenizer(const std::filesystem::path& dir,
                                          int64_t model_vocab_size) {
  const std::string kind = tokenizer_kind(dir);
  if (kind == "byte") return std::make_unique<ByteTokenizer>(model_vocab_size);
  const std::filesystem::path file =
      dir / (kind == "sentencepiece" ? kSentencePieceModelFile : kHfTokenizerFile);
  std::unique_ptr<Tokenizer> tokenizer;
  if (kind == "sentencepiece") {
    tokenizer = std::make_unique<SentencePieceTokenizer>(file);
  } else {
    tokenizer = std::make_unique<HfTokenizer>(file);
  }
  if (tokenizer->vocab_size() > model_vocab_size) {
    throw ModelError(file.string() + ": " + std::to_string(tokenizer->vocab_size()) +
                " tokens do not fit the model's vocab_size " + std::to_string(model_vocab_size));
  }
  return tokenizer;
}

}  // namespace model
