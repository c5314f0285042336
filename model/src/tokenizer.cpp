#include "model/tokenizer.h"

#include "model/byte_tokenizer.h"
#include "model/error.h"
#include "model/sentencepiece_tokenizer.h"

namespace model {

std::unique_ptr<Tokenizer> load_tokenizer(const std::filesystem::path& dir,
                                          int64_t model_vocab_size) {
  const std::filesystem::path sp = dir / kSentencePieceModelFile;
  std::error_code ec;
  if (!std::filesystem::exists(sp, ec)) return std::make_unique<ByteTokenizer>(model_vocab_size);
  auto tokenizer = std::make_unique<SentencePieceTokenizer>(sp);
  if (tokenizer->vocab_size() > model_vocab_size) {
    throw Error(sp.string() + ": " + std::to_string(tokenizer->vocab_size()) +
                " pieces do not fit the model's vocab_size " + std::to_string(model_vocab_size));
  }
  return tokenizer;
}

}  // namespace model
