#include "model/dataset.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <numeric>
#include <sstream>
#include <utility>

#include "model/error.h"
#include "seeded_random.h"

namespace model {
namespace {

using nlohmann::json;

std::string read_capped(const std::filesystem::path& path, int64_t max_bytes) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) {
    throw ModelError(path.string() + ": cannot open (no such file)");
  }
  const auto size = std::filesystem::file_size(path, ec);
  if (ec) throw ModelError(path.string() + ": cannot read: " + ec.message());
  if (size > static_cast<uint64_t>(max_bytes)) {
    throw ModelError(path.string() + ": " + std::to_string(size) + " bytes, over the limit of " +
                     std::to_string(max_bytes));
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) throw ModelError(path.string() + ": cannot open");
  std::string bytes(size, '\0');
  if (!in.read(bytes.data(), static_cast<std::streamsize>(size))) {
    throw ModelError(path.string() + ": read failed");
  }
  return bytes;
}

bool is_blank(std::string_view line) {
  return line.find_first_not_of(" \t\r") == std::string_view::npos;
}

// Calls `on_object(object, where)` for each non-blank line, where = "file:line".
void for_each_jsonl_object(const std::filesystem::path& path, int64_t max_bytes,
                           const std::function<void(const json&, const std::string&)>& on_object) {
  const std::string bytes = read_capped(path, max_bytes);
  std::string_view rest(bytes);
  if (rest.starts_with("\xEF\xBB\xBF")) rest.remove_prefix(3);  // UTF-8 byte-order mark
  int64_t line_number = 0;
  int64_t records = 0;
  while (!rest.empty()) {
    const size_t end = rest.find('\n');
    std::string_view line = rest.substr(0, end);
    rest.remove_prefix(end == std::string_view::npos ? rest.size() : end + 1);
    ++line_number;
    if (is_blank(line)) continue;
    const std::string where = path.string() + ":" + std::to_string(line_number);
    json object;
    try {
      object = json::parse(line);
    } catch (const json::parse_error& e) {
      throw ModelError(where + ": not valid JSON (at byte " + std::to_string(e.byte) + ")");
    }
    if (!object.is_object()) throw ModelError(where + ": not a JSON object");
    on_object(object, where);
    ++records;
  }
  if (records == 0) throw ModelError(path.string() + ": no records (empty file)");
}

}  // namespace

std::vector<std::string> read_jsonl_texts(const std::filesystem::path& path, int64_t max_bytes) {
  std::vector<std::string> texts;
  for_each_jsonl_object(path, max_bytes, [&](const json& object, const std::string& where) {
    const auto it = object.find("text");
    if (it == object.end()) throw ModelError(where + ": missing \"text\"");
    if (!it->is_string()) throw ModelError(where + ": \"text\" is not a string");
    texts.push_back(it->get<std::string>());
  });
  return texts;
}

std::vector<McqQuestion> read_mcq_jsonl(const std::filesystem::path& path, int64_t max_bytes) {
  std::vector<McqQuestion> questions;
  for_each_jsonl_object(path, max_bytes, [&](const json& object, const std::string& where) {
    McqQuestion q;
    const auto question = object.find("question");
    if (question == object.end() || !question->is_string()) {
      throw ModelError(where + ": missing string \"question\"");
    }
    q.question = question->get<std::string>();
    const auto options = object.find("options");
    if (options == object.end() || !options->is_array()) {
      throw ModelError(where + ": missing list \"options\"");
    }
    for (const auto& option : *options) {
      if (!option.is_string()) throw ModelError(where + ": an option is not a string");
      q.options.push_back(option.get<std::string>());
    }
    if (q.options.size() < 2) throw ModelError(where + ": fewer than two options");
    const auto answer = object.find("answer");
    if (answer == object.end() || !answer->is_number_integer()) {
      throw ModelError(where + ": missing integer \"answer\"");
    }
    q.answer = answer->get<int64_t>();
    if (q.answer < 0 || q.answer >= static_cast<int64_t>(q.options.size())) {
      throw ModelError(where + ": answer " + std::to_string(q.answer) + " is not an index of the " +
                       std::to_string(q.options.size()) + " options");
    }
    questions.push_back(std::move(q));
  });
  return questions;
}

std::vector<int32_t> tokenize_example(std::string_view text, const Tokenizer& tokenizer,
                                      int64_t seq_len) {
  if (seq_len < 2) {
    throw ModelError("sequence length must be at least 2 (BOS and EOS), got " +
                     std::to_string(seq_len));
  }
  std::vector<int32_t> ids;
  ids.reserve(std::min<size_t>(text.size() + 2, static_cast<size_t>(seq_len)));
  ids.push_back(tokenizer.bos_id());
  const std::vector<int32_t> body = tokenizer.encode(text);
  ids.insert(ids.end(), body.begin(), body.end());
  ids.push_back(tokenizer.eos_id());
  if (static_cast<int64_t>(ids.size()) > seq_len) ids.resize(static_cast<size_t>(seq_len));
  return ids;
}

TextDataset::TextDataset(std::span<const std::string> texts, const Tokenizer& tokenizer,
                         int64_t seq_len)
    : seq_len_(seq_len) {
  if (texts.empty()) throw ModelError("dataset: no texts");
  if (seq_len < 2) {
    throw ModelError("sequence length must be at least 2 (BOS and EOS), got " +
                     std::to_string(seq_len));
  }
  records_.reserve(texts.size());
  for (const auto& text : texts) {
    std::vector<int32_t> ids = {tokenizer.bos_id()};
    const std::vector<int32_t> body = tokenizer.encode(text);
    ids.insert(ids.end(), body.begin(), body.end());
    ids.push_back(tokenizer.eos_id());
    records_.push_back(std::move(ids));
  }
}

TextDataset load_text_dataset(const std::filesystem::path& path, const Tokenizer& tokenizer,
                              int64_t seq_len) {
  const std::vector<std::string> texts = read_jsonl_texts(path);
  return TextDataset(texts, tokenizer, seq_len);
}

TextDataset::TextDataset(std::vector<std::vector<int32_t>> examples)
    : records_(std::move(examples)) {
  if (records_.empty()) throw ModelError("dataset: no examples");
  for (size_t i = 0; i < records_.size(); ++i) {
    if (records_[i].empty())
      throw ModelError("dataset: example " + std::to_string(i) + " is empty");
    seq_len_ = std::max<int64_t>(seq_len_, static_cast<int64_t>(records_[i].size()));
  }
  seq_len_ = std::max<int64_t>(seq_len_, 2);
}

std::span<const int32_t> TextDataset::example(int64_t i) const {
  return window(i, 0);
}

int64_t TextDataset::token_count() const {
  int64_t n = 0;
  for (int64_t i = 0; i < size(); ++i) n += static_cast<int64_t>(example(i).size());
  return n;
}

int64_t TextDataset::window_count(int64_t i) const {
  if (i < 0 || i >= size()) {
    throw ModelError("dataset: example index " + std::to_string(i) + " outside [0, " +
                     std::to_string(size()) + ")");
  }
  const auto n = static_cast<int64_t>(records_[static_cast<size_t>(i)].size());
  if (n <= seq_len_) return 1;
  const int64_t stride = seq_len_ - 1;
  return 1 + (n - seq_len_ + stride - 1) / stride;
}

std::span<const int32_t> TextDataset::window(int64_t i, int64_t k) const {
  const int64_t count = window_count(i);
  if (k < 0 || k >= count) {
    throw ModelError("dataset: window " + std::to_string(k) + " of example " + std::to_string(i) +
                     " outside [0, " + std::to_string(count) + ")");
  }
  const std::vector<int32_t>& r = records_[static_cast<size_t>(i)];
  const int64_t begin = k * (seq_len_ - 1);
  const int64_t length = std::min<int64_t>(seq_len_, static_cast<int64_t>(r.size()) - begin);
  return std::span<const int32_t>(r).subspan(static_cast<size_t>(begin),
                                             static_cast<size_t>(length));
}

std::vector<RecordWindow> TextDataset::all_windows() const {
  std::vector<RecordWindow> windows;
  for (int64_t i = 0; i < size(); ++i) {
    for (int64_t k = 0; k < window_count(i); ++k) windows.push_back({i, k});
  }
  return windows;
}

TokenBatch TextDataset::batch(std::span<const int64_t> indices) const {
  std::vector<RecordWindow> windows;
  windows.reserve(indices.size());
  for (int64_t i : indices) windows.push_back({i, 0});
  return batch(windows);
}

TokenBatch TextDataset::batch(std::span<const int64_t> indices, uint64_t draw) const {
  std::vector<RecordWindow> windows;
  windows.reserve(indices.size());
  for (int64_t i : indices) {
    const auto count = static_cast<uint64_t>(window_count(i));
    const uint64_t h = detail::mix_seed(draw, static_cast<uint64_t>(i));
    windows.push_back({i, static_cast<int64_t>(h % count)});
  }
  return batch(windows);
}

TextDataset TextDataset::window_sample(int64_t max_windows) const {
  if (max_windows < 1) {
    throw ModelError("dataset: a window sample needs at least one window, got " +
                     std::to_string(max_windows));
  }
  const std::vector<RecordWindow> windows = all_windows();
  const auto total = static_cast<int64_t>(windows.size());
  const int64_t n = std::min(total, max_windows);
  std::vector<std::vector<int32_t>> examples;
  examples.reserve(static_cast<size_t>(n));
  for (int64_t j = 0; j < n; ++j) {
    const RecordWindow& w = windows[static_cast<size_t>(j * total / n)];
    const auto tokens = window(w.record, w.window);
    examples.emplace_back(tokens.begin(), tokens.end());
  }
  return TextDataset(std::move(examples));
}

TokenBatch TextDataset::batch(std::span<const RecordWindow> windows) const {
  std::vector<std::vector<int32_t>> sequences;
  sequences.reserve(windows.size());
  for (const RecordWindow& w : windows) {
    const auto e = window(w.record, w.window);
    sequences.emplace_back(e.begin(), e.end());
  }
  return TokenBatch(sequences);
}

ShuffledBatches::ShuffledBatches(int64_t size, int64_t batch_size, uint64_t seed)
    : size_(size), batch_size_(batch_size), seed_(seed) {
  if (batch_size < 1 || batch_size > size) {
    throw ModelError("batches: batch size " + std::to_string(batch_size) +
                     " must be between 1 and the dataset size " + std::to_string(size));
  }
  shuffle_epoch();
}

void ShuffledBatches::shuffle_epoch() {
  order_.resize(static_cast<size_t>(size_));
  std::iota(order_.begin(), order_.end(), int64_t{0});
  std::mt19937_64 engine(detail::mix_seed(seed_, static_cast<uint64_t>(epoch_)));
  for (size_t i = order_.size() - 1; i > 0; --i) {  // Fisher-Yates
    std::swap(order_[i], order_[detail::uniform_below(engine, i + 1)]);
  }
}

std::vector<int64_t> ShuffledBatches::next() {
  const auto begin = order_.begin() + batch_ * batch_size_;
  std::vector<int64_t> out(begin, begin + batch_size_);
  if (++batch_ == batches_per_epoch()) {
    batch_ = 0;
    ++epoch_;
    shuffle_epoch();
  }
  return out;
}

void ShuffledBatches::seek(int64_t epoch, int64_t batch_in_epoch) {
  if (epoch < 0 || batch_in_epoch < 0 || batch_in_epoch >= batches_per_epoch()) {
    throw ModelError("batches: cannot seek to epoch " + std::to_string(epoch) + ", batch " +
                     std::to_string(batch_in_epoch) + " (" + std::to_string(batches_per_epoch()) +
                     " batches per epoch)");
  }
  batch_ = batch_in_epoch;
  if (epoch != epoch_) {
    epoch_ = epoch;
    shuffle_epoch();
  }
}

std::vector<int64_t> poisson_sample(int64_t size, double q, RandomBits& bits) {
  if (size < 0) throw ModelError("Poisson sampling: negative dataset size " + std::to_string(size));
  if (!(q >= 0.0 && q <= 1.0)) {
    std::ostringstream s;
    s << "Poisson sampling: rate q = " << q << " is outside [0, 1]";
    throw ModelError(s.str());
  }
  std::vector<int64_t> chosen;
  if (q == 0.0) return chosen;
  // round(q * 2^64) as an integer threshold; q * 2^64 is exact in double (a power-of-two
  // scaling) and below 2^64 for q < 1.
  const bool all = q == 1.0;
  const double scaled = std::nearbyint(std::ldexp(q, 64));
  const uint64_t threshold = all || scaled >= 0x1p64 ? UINT64_MAX : static_cast<uint64_t>(scaled);
  for (int64_t i = 0; i < size; ++i) {
    const uint64_t word = bits.next_u64();
    if (all || word < threshold) chosen.push_back(i);
  }
  return chosen;
}

}  // namespace model
