#include "model/sentencepiece_tokenizer.h"

#include <sentencepiece_processor.h>

#include "model/error.h"

namespace model {

SentencePieceTokenizer::SentencePieceTokenizer(const std::filesystem::path& path)
    : path_(path), processor_(std::make_unique<sentencepiece::SentencePieceProcessor>()) {
  const auto status = processor_->Load(path.string());
  if (!status.ok())
    throw ModelError(path.string() + ": cannot load SentencePiece model: " + status.ToString());
  if (processor_->bos_id() < 0 || processor_->eos_id() < 0) {
    throw ModelError(path.string() + ": SentencePiece model lacks BOS or EOS pieces");
  }
}

SentencePieceTokenizer::~SentencePieceTokenizer() = default;

std::vector<int32_t> SentencePieceTokenizer::encode(std::string_view text) const {
  std::vector<int> ids;
  const auto status = processor_->Encode(text, &ids);
  if (!status.ok()) throw ModelError(path_.string() + ": encode failed: " + status.ToString());
  return {ids.begin(), ids.end()};
}

std::string SentencePieceTokenizer::decode(std::span<const int32_t> ids) const {
  const int64_t n = vocab_size();
  for (int32_t id : ids) {
    if (id < 0 || id >= n) {
      throw ModelError(path_.string() + ": id " + std::to_string(id) + " outside the vocabulary of " +
                  std::to_string(n));
    }
  }
  std::string text;
  const auto status = processor_->Decode(std::vector<int>(ids.begin(), ids.end()), &text);
  if (!status.ok()) throw ModelError(path_.string() + ": decode failed: " + status.ToString());
  return text;
}

int32_t SentencePieceTokenizer::bos_id() const {
  return processor_->bos_id();
}
int32_t SentencePieceTokenizer::eos_id() const {
  return processor_->eos_id();
}
int64_t SentencePieceTokenizer::vocab_size() const {
  return processor_->GetPieceSize();
}

}  // namespace model
