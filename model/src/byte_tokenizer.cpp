#include "model/byte_tokenizer.h"

#include "model/error.h"

namespace model {

ByteTokenizer::ByteTokenizer(int64_t vocab_size) : vocab_size_(vocab_size) {
  if (vocab_size < kMinVocabSize) {
    throw ModelError("byte tokenizer needs vocab_size >= " + std::to_string(kMinVocabSize) + ", got " +
                std::to_string(vocab_size) + " (add a tokenizer.model or enlarge the vocabulary)");
  }
}

std::vector<int32_t> ByteTokenizer::encode(std::string_view text) const {
  std::vector<int32_t> ids;
  ids.reserve(text.size());
  for (char c : text) ids.push_back(kFirstByteId + static_cast<unsigned char>(c));
  return ids;
}

std::string ByteTokenizer::decode(std::span<const int32_t> ids) const {
  std::string text;
  text.reserve(ids.size());
  for (int32_t id : ids) {
    if (id < 0 || id >= vocab_size_) {
      throw ModelError("byte tokenizer: id " + std::to_string(id) + " outside the vocabulary of " +
                  std::to_string(vocab_size_));
    }
    if (id >= kFirstByteId && id < kFirstByteId + 256) {
      text.push_back(static_cast<char>(id - kFirstByteId));
    }
  }
  return text;
}

}  // namespace model
