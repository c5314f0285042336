// One token per byte: the fallback tokenizer for models without a tokenizer.model.
//
// Ids follow Llama's SentencePiece numbering: 0 unknown/padding, 1 BOS, 2 EOS, and byte b is
// id 3 + b (the <0xNN> byte-fallback pieces). Any UTF-8 (indeed any byte string) round-trips.
#pragma once

#include "model/tokenizer.h"

namespace model {

class ByteTokenizer : public Tokenizer {
 public:
  static constexpr int32_t kUnkId = 0;
  static constexpr int32_t kBosId = 1;
  static constexpr int32_t kEosId = 2;
  static constexpr int32_t kFirstByteId = 3;
  static constexpr int64_t kMinVocabSize = kFirstByteId + 256;  // 259

  // `vocab_size` is the model's embedding rows; ids above the byte range are never produced and
  // decode to nothing. Throws model::ModelError when vocab_size < 259.
  explicit ByteTokenizer(int64_t vocab_size);

  std::vector<int32_t> encode(std::string_view text) const override;
  std::string decode(std::span<const int32_t> ids) const override;
  int32_t bos_id() const override { return kBosId; }
  int32_t eos_id() const override { return kEosId; }
  int64_t vocab_size() const override { return vocab_size_; }

 private:
  int64_t vocab_size_;
};

}  // namespace model
