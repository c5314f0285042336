#include "model/token_batch.h"

#include <algorithm>
#include <string>

#include "model/error.h"

namespace model {

TokenBatch::TokenBatch(const std::vector<std::vector<int32_t>>& sequences) {
  size_t total = 0;
  for (const auto& s : sequences) total += s.size();
  tokens_.reserve(total);
  for (const auto& s : sequences) {
    spans_.push_back({static_cast<int64_t>(tokens_.size()), static_cast<int64_t>(s.size())});
    tokens_.insert(tokens_.end(), s.begin(), s.end());
  }
}

std::span<const int32_t> TokenBatch::sequence(size_t s) const {
  const SequenceSpan& span = spans_.at(s);
  return std::span<const int32_t>(tokens_).subspan(static_cast<size_t>(span.begin),
                                                   static_cast<size_t>(span.length));
}

int64_t TokenBatch::max_length() const {
  int64_t m = 0;
  for (const auto& s : spans_) m = std::max(m, s.length);
  return m;
}

void validate_token_batch(const TokenBatch& batch, const LlamaConfig& config) {
  if (batch.sequence_count() == 0) throw ModelError("the token batch holds no sequence");
  for (size_t s = 0; s < batch.spans().size(); ++s) {
    const auto seq = batch.sequence(s);
    if (seq.empty()) throw ModelError("sequence " + std::to_string(s) + " of the batch is empty");
    if (static_cast<int64_t>(seq.size()) > config.max_position_embeddings) {
      throw ModelError("sequence " + std::to_string(s) + " has " + std::to_string(seq.size()) +
                  " tokens, more than max_position_embeddings " +
                  std::to_string(config.max_position_embeddings));
    }
    for (size_t p = 0; p < seq.size(); ++p) {
      if (seq[p] < 0 || seq[p] >= config.vocab_size) {
        throw ModelError("token id " + std::to_string(seq[p]) + " (sequence " + std::to_string(s) +
                    ", position " + std::to_string(p) + ") is outside the vocabulary [0, " +
                    std::to_string(config.vocab_size) + ")");
      }
    }
  }
}

}  // namespace model
