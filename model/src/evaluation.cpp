#include "model/evaluation.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "model/cross_entropy.h"
#include "model/error.h"

namespace model {
namespace {

// Context [BOS, encode(question)] and the continuation tokens of " " + option.
struct ScoredSequence {
  std::vector<int32_t> tokens;
  int64_t continuation = 0;  // the last `continuation` tokens are scored
};

ScoredSequence option_sequence(const McqQuestion& q, const std::string& option,
                               const Tokenizer& tokenizer, int64_t max_length) {
  std::vector<int32_t> context = {tokenizer.bos_id()};
  const std::vector<int32_t> question = tokenizer.encode(q.question);
  context.insert(context.end(), question.begin(), question.end());
  const std::vector<int32_t> whole = tokenizer.encode(q.question + " " + option);
  std::vector<int32_t> continuation;
  if (whole.size() > question.size() &&
      std::equal(question.begin(), question.end(), whole.begin())) {
    continuation.assign(whole.begin() + static_cast<std::ptrdiff_t>(question.size()), whole.end());
  } else {
    continuation = tokenizer.encode(" " + option);
  }
  if (continuation.empty()) {
    throw ModelError("MCQ: option '" + option + "' of '" + q.question + "' has no tokens");
  }
  if (static_cast<int64_t>(continuation.size()) + 1 > max_length) {
    throw ModelError("MCQ: option '" + option.substr(0, 40) + "' has " +
                     std::to_string(continuation.size()) +
                     " tokens, too many for max_position_embeddings " + std::to_string(max_length));
  }
  ScoredSequence s;
  s.continuation = static_cast<int64_t>(continuation.size());
  const int64_t keep_context =
      std::min<int64_t>(static_cast<int64_t>(context.size()), max_length - s.continuation);
  s.tokens.assign(context.end() - keep_context, context.end());
  s.tokens.insert(s.tokens.end(), continuation.begin(), continuation.end());
  return s;
}

}  // namespace

int64_t predicted_tokens(const TokenBatch& batch) {
  int64_t n = 0;
  for (const SequenceSpan& span : batch.spans()) n += std::max<int64_t>(0, span.length - 1);
  return n;
}

EvalResult evaluate_loss(LlamaModel& model, const TextDataset& data, const LoraParams* lora,
                         int64_t batch_size) {
  if (batch_size < 1) {
    throw ModelError("evaluation: batch size must be at least 1, got " +
                     std::to_string(batch_size));
  }
  EvalResult r;
  r.sequences = data.size();
  double total = 0;
  const std::vector<RecordWindow> windows = data.all_windows();
  const auto b = static_cast<size_t>(batch_size);
  for (size_t begin = 0; begin < windows.size(); begin += b) {
    const TokenBatch batch = data.batch(
        std::span<const RecordWindow>(windows).subspan(begin, std::min(b, windows.size() - begin)));
    const int64_t predicted = predicted_tokens(batch);
    if (predicted == 0) continue;
    total += model.loss(batch, lora) * static_cast<double>(predicted);
    r.tokens += predicted;
  }
  if (r.tokens == 0) throw ModelError("evaluation: no example has two tokens to predict from");
  r.loss = total / static_cast<double>(r.tokens);
  r.perplexity = std::exp(r.loss);
  return r;
}

std::vector<double> option_log_likelihoods(LlamaModel& model, const McqQuestion& question,
                                           const Tokenizer& tokenizer, const LoraParams* lora) {
  if (question.options.empty()) throw ModelError("MCQ: '" + question.question + "' has no options");
  std::vector<ScoredSequence> scored;
  std::vector<std::vector<int32_t>> sequences;
  for (const std::string& option : question.options) {
    scored.push_back(
        option_sequence(question, option, tokenizer, model.config().max_position_embeddings));
    sequences.push_back(scored.back().tokens);
  }
  const TokenBatch batch(sequences);
  const Matrix logits = model.forward(batch, nullptr, lora);
  std::vector<double> scores;
  for (size_t s = 0; s < scored.size(); ++s) {
    const SequenceSpan span = batch.spans()[s];
    double ll = 0;
    for (int64_t p = span.length - scored[s].continuation - 1; p + 1 < span.length; ++p) {
      const auto row = logits.row(span.begin + p).cast<double>();
      const double max = row.maxCoeff();
      const double lse = max + std::log((row.array() - max).exp().sum());
      ll += row(batch.tokens()[static_cast<size_t>(span.begin + p + 1)]) - lse;
    }
    scores.push_back(ll);
  }
  return scores;
}

McqResult evaluate_mcq(LlamaModel& model, std::span<const McqQuestion> questions,
                       const Tokenizer& tokenizer, const LoraParams* lora) {
  if (questions.empty()) throw ModelError("MCQ: no questions");
  McqResult r;
  for (const McqQuestion& q : questions) {
    if (q.answer < 0 || q.answer >= static_cast<int64_t>(q.options.size())) {
      throw ModelError("MCQ: the answer of '" + q.question + "' is not one of its options");
    }
    std::vector<double> scores = option_log_likelihoods(model, q, tokenizer, lora);
    for (size_t i = 0; i < scores.size(); ++i) {  // per byte of " " + option (acc_norm)
      scores[i] /= static_cast<double>(q.options[i].size() + 1);
    }
    bool right = true;
    for (size_t i = 0; i < scores.size(); ++i) {
      if (static_cast<int64_t>(i) != q.answer && scores[i] >= scores[q.answer]) right = false;
    }
    r.correct += right ? 1 : 0;
    ++r.questions;
  }
  r.accuracy = static_cast<double>(r.correct) / static_cast<double>(r.questions);
  return r;
}

EvaluationReport evaluate_model(LlamaModel& model, const LoraParams* lora, const TextDataset* data,
                                const std::vector<McqQuestion>* mcq, const Tokenizer& tokenizer,
                                int64_t batch_size) {
  EvaluationReport report;
  if (data) report.loss = evaluate_loss(model, *data, lora, batch_size);
  if (mcq) report.mcq = evaluate_mcq(model, *mcq, tokenizer, lora);
  return report;
}

}  // namespace model
