// Training data: JSON-lines text files, tokenized examples, and the two ways of drawing batches.
//
//   auto texts = model::read_jsonl_texts("site0.jsonl");
//   model::TextDataset data(texts, tokenizer, /*seq_len=*/256);
//   model::ShuffledBatches epochs(data.size(), /*batch_size=*/8, /*seed=*/1);
//   model::TokenBatch batch = data.batch(epochs.next());
//
//   model::UrbgRandomBits<MyCsprng> bits(csprng);          // DP-SGD: Poisson sampling
//   model::TokenBatch batch = data.batch(model::poisson_sample(data.size(), q, bits));
//
// One example per record: each JSON line becomes exactly one training example, the sequence
// [BOS, tokens of the text, EOS]. Records are never packed together, so that an example is one
// record and example-level differential privacy protects each record as a unit.
//
// Windows. A record longer than seq_len tokens is not cut to its start: it is seen through
// *windows* of at most seq_len tokens, window k starting at token k * (seq_len - 1), so that
// consecutive windows share one token and every token after BOS is predicted in exactly one
// window (the last window may be shorter). A training step takes one window of each sampled
// record (batch(indices, draw): the window is a hash of the step's draw and the record's index),
// so a record still contributes one clipped gradient per step and the DP unit stays the record;
// evaluation (model/evaluation.h) scores every window of every record.
#pragma once

#include <cstdint>
#include <filesystem>
#include <limits>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "model/token_batch.h"
#include "model/tokenizer.h"

namespace model {

// Largest JSON-lines file the readers accept.
inline constexpr int64_t kMaxJsonlBytes = int64_t{1} << 30;  // 1 GiB

// The "text" field of every line of a JSON-lines file, in order. Blank lines are skipped.
// Throws model::ModelError with one line naming the file and, where there is one, the line number:
// a missing or unreadable file, a file over `max_bytes`, a line that is not valid JSON or not
// an object, a missing or non-string "text", a file without any record.
std::vector<std::string> read_jsonl_texts(const std::filesystem::path& path,
                                          int64_t max_bytes = kMaxJsonlBytes);

// A multiple-choice question: options[answer] is the right one.
struct McqQuestion {
  std::string question;
  std::vector<std::string> options;
  int64_t answer = 0;

  bool operator==(const McqQuestion&) const = default;
};

// Reads {"question": string, "options": [string, ...], "answer": integer} per line. Throws
// model::ModelError as read_jsonl_texts does, and for fewer than two options or an answer outside
// [0, options.size()).
std::vector<McqQuestion> read_mcq_jsonl(const std::filesystem::path& path,
                                        int64_t max_bytes = kMaxJsonlBytes);

// [BOS, encode(text), EOS] truncated to `seq_len` tokens. Throws model::ModelError for seq_len < 2.
std::vector<int32_t> tokenize_example(std::string_view text, const Tokenizer& tokenizer,
                                      int64_t seq_len);

// One window of a record: window `window` of record `record`.
struct RecordWindow {
  int64_t record = 0;
  int64_t window = 0;
};

// Tokenized records, one example per record, seen through windows of at most seq_len tokens.
class TextDataset {
 public:
  // Tokenizes every text as [BOS, encode(text), EOS], whole. Throws model::ModelError for
  // seq_len < 2 or no texts.
  TextDataset(std::span<const std::string> texts, const Tokenizer& tokenizer, int64_t seq_len);
  // Already tokenized examples, each its own single window (seq_len is the longest); throws
  // model::ModelError if there are none or one is empty.
  explicit TextDataset(std::vector<std::vector<int32_t>> examples);

  int64_t size() const { return static_cast<int64_t>(records_.size()); }
  int64_t seq_len() const { return seq_len_; }
  // Record i's first window: its first seq_len tokens (a longer record loses its EOS here).
  std::span<const int32_t> example(int64_t i) const;
  // Total tokens over every record's first window.
  int64_t token_count() const;

  // How many windows record i has (1 when it fits in seq_len tokens), and window k of it.
  // Throw model::ModelError for an index out of range.
  int64_t window_count(int64_t i) const;
  std::span<const int32_t> window(int64_t i, int64_t k) const;
  // Every window of every record, record by record.
  std::vector<RecordWindow> all_windows() const;

  // At most `max_windows` of the windows of all_windows(), evenly spaced over it (all of them
  // when there are no more), each an example of its own: a fixed, cheaper held-out set (a
  // participant scores its own held-out notes through the encrypted workers every round).
  // Throws model::ModelError for max_windows < 1.
  TextDataset window_sample(int64_t max_windows) const;

  // The first windows of the records at `indices`, in that order (repeats allowed). Throws
  // model::ModelError for an index outside [0, size()). An empty `indices` gives an empty batch.
  TokenBatch batch(std::span<const int64_t> indices) const;
  // One window of each record at `indices`: window mix(draw, index) mod window_count(index).
  // The same draw and index always give the same window; a record of one window gives it.
  TokenBatch batch(std::span<const int64_t> indices, uint64_t draw) const;
  // The given windows, in that order.
  TokenBatch batch(std::span<const RecordWindow> windows) const;

 private:
  std::vector<std::vector<int32_t>> records_;
  int64_t seq_len_ = 0;
};

// One example per "text" record of a JSON-lines file (read_jsonl_texts), tokenized, seen through
// windows of seq_len tokens. Throws model::ModelError naming the file for a missing, malformed or
// empty file, and for seq_len < 2.
TextDataset load_text_dataset(const std::filesystem::path& path, const Tokenizer& tokenizer,
                              int64_t seq_len);

// Shuffled fixed-size batches, epoch after epoch: each epoch is a fresh permutation of
// [0, size) cut into size / batch_size batches of exactly batch_size indices; the last
// size % batch_size indices of the permutation are left out of that epoch (as PyTorch's
// DataLoader with drop_last=True). The permutation of epoch e depends only on (seed, e), so the
// position (epoch, batch) is the whole state a checkpoint needs. Training data order, not a
// privacy mechanism: std::mt19937_64.
class ShuffledBatches {
 public:
  // Throws model::ModelError unless 1 <= batch_size <= size.
  ShuffledBatches(int64_t size, int64_t batch_size, uint64_t seed);

  // The next batch of batch_size distinct indices.
  std::vector<int64_t> next();

  int64_t batches_per_epoch() const { return size_ / batch_size_; }
  // The epoch and the batch within it that next() returns.
  int64_t epoch() const { return epoch_; }
  int64_t batch_in_epoch() const { return batch_; }
  // Jumps to a saved position. Throws model::ModelError for a negative epoch or a batch outside
  // [0, batches_per_epoch()).
  void seek(int64_t epoch, int64_t batch_in_epoch);

 private:
  void shuffle_epoch();

  int64_t size_;
  int64_t batch_size_;
  uint64_t seed_;
  int64_t epoch_ = 0;
  int64_t batch_ = 0;
  std::vector<int64_t> order_;  // the permutation of epoch_
};

// A source of uniformly random 64-bit words. The privacy code passes one backed by a
// cryptographically secure generator; tests may wrap a seeded engine.
class RandomBits {
 public:
  virtual ~RandomBits() = default;
  virtual uint64_t next_u64() = 0;
};

// Adapts any uniform random bit generator whose range is all 32-bit or all 64-bit words
// (std::mt19937, std::mt19937_64, std::random_device, a CSPRNG with the same interface).
// Holds a reference: `engine` must outlive the adapter.
template <class Urbg>
class UrbgRandomBits : public RandomBits {
 public:
  using Word = typename Urbg::result_type;
  static_assert(Urbg::min() == 0, "generator must start at 0");
  static_assert(Urbg::max() == std::numeric_limits<uint64_t>::max() ||
                    Urbg::max() == std::numeric_limits<uint32_t>::max(),
                "generator must produce full 32-bit or 64-bit words");

  explicit UrbgRandomBits(Urbg& engine) : engine_(engine) {}

  uint64_t next_u64() override {
    if constexpr (Urbg::max() == std::numeric_limits<uint64_t>::max()) {
      return static_cast<uint64_t>(engine_());
    } else {
      const uint64_t high = static_cast<uint64_t>(engine_());
      return (high << 32) | static_cast<uint64_t>(engine_());
    }
  }

 private:
  Urbg& engine_;
};

// Poisson sampling for DP-SGD: each index of [0, size) is included independently with
// probability q, in increasing order; the result may be empty. Example i is included when the
// i-th word of `bits` is below round(q * 2^64) (all words when q == 1), so the inclusion
// probability equals q to within 2^-64. Throws model::ModelError for a negative size or q outside
// [0, 1].
std::vector<int64_t> poisson_sample(int64_t size, double q, RandomBits& bits);

}  // namespace model
