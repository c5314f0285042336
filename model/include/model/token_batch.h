// A batch of token sequences that run through the model together.
//
// The sequences' tokens are concatenated in order: sequence s occupies columns
// [span.begin, span.begin + span.length) of every activation matrix (see activations.h). Each
// sequence attends only to itself (causally) and its positions start at 0, exactly as if it were
// run alone.
//
//   model::TokenBatch batch({{1, 15, 27}, {1, 8}});   // T = 5 columns
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "model/llama_config.h"

namespace model {

struct SequenceSpan {
  int64_t begin = 0;   // first column of the sequence
  int64_t length = 0;  // tokens (= positions 0 .. length-1)
};

class TokenBatch {
 public:
  TokenBatch() = default;
  explicit TokenBatch(const std::vector<std::vector<int32_t>>& sequences);

  // Every token of every sequence, in column order.
  std::span<const int32_t> tokens() const { return tokens_; }
  const std::vector<SequenceSpan>& spans() const { return spans_; }
  // The tokens of sequence s.
  std::span<const int32_t> sequence(size_t s) const;

  int64_t total_tokens() const { return static_cast<int64_t>(tokens_.size()); }
  int64_t sequence_count() const { return static_cast<int64_t>(spans_.size()); }
  // Length of the longest sequence (0 for an empty batch).
  int64_t max_length() const;

 private:
  std::vector<int32_t> tokens_;
  std::vector<SequenceSpan> spans_;
};

// Throws model::ModelError with one line unless `batch` can run through a model with `config`: it
// holds at least one sequence, no sequence is empty or longer than max_position_embeddings, and
// every id lies in [0, vocab_size).
void validate_token_batch(const TokenBatch& batch, const LlamaConfig& config);

}  // namespace model
