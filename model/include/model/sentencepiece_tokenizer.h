// A SentencePiece model (tokenizer.model) through libsentencepiece.
#pragma once

#include <filesystem>
#include <memory>

#include "model/tokenizer.h"

namespace sentencepiece {
class SentencePieceProcessor;
}  // namespace sentencepiece

namespace model {

class SentencePieceTokenizer : public Tokenizer {
 public:
  // Loads the serialized model at `path`. Throws model::ModelError naming the file when it cannot
  // be read or parsed, or when it lacks BOS/EOS pieces.
  explicit SentencePieceTokenizer(const std::filesystem::path& path);
  ~SentencePieceTokenizer() override;

  std::vector<int32_t> encode(std::string_view text) const override;
  std::string decode(std::span<const int32_t> ids) const override;
  int32_t bos_id() const override;
  int32_t eos_id() const override;
  int64_t vocab_size() const override;

 private:
  std::filesystem::path path_;
  std::unique_ptr<sentencepiece::SentencePieceProcessor> processor_;
};

}  // namespace model
