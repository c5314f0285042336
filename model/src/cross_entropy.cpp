#include "model/cross_entropy.h"

#include <cmath>
#include <string>

#include "model/error.h"

namespace model {
namespace {

// log sum_i exp(r_i), with the largest element factored out.
template <typename Row>
double log_sum_exp(const Row& r) {
  const double max = r.maxCoeff();
  return max + std::log((r.array() - max).exp().sum());
}

void check_label(int32_t label, int64_t vocab, const char* where) {
  if (label < 0 || label >= vocab) {
    throw ModelError(std::string(where) + ": label " + std::to_string(label) + " outside [0, " +
                std::to_string(vocab) + ")");
  }
}

}  // namespace

std::vector<int32_t> next_token_labels(const TokenBatch& batch, int64_t vocab) {
  const auto tokens = batch.tokens();
  std::vector<int32_t> labels(static_cast<size_t>(batch.total_tokens()), -1);
  for (const SequenceSpan& span : batch.spans()) {
    for (int64_t p = 0; p + 1 < span.length; ++p) {
      const int32_t label = tokens[span.begin + p + 1];
      check_label(label, vocab, "cross-entropy");
      labels[static_cast<size_t>(span.begin + p)] = label;
    }
  }
  return labels;
}

template <typename Scalar>
void cross_entropy_columns(const ActivationsT<Scalar>& logits, std::span<const int32_t> labels,
                           double dloss_per_position, ActivationsT<Scalar>* dlogits,
                           double& total) {
  if (logits.cols() != static_cast<int64_t>(labels.size())) {
    throw ModelError("cross-entropy: " + std::to_string(logits.cols()) + " columns of logits for " +
                std::to_string(labels.size()) + " labels");
  }
  if (dlogits) dlogits->setZero(logits.rows(), logits.cols());
  for (int64_t j = 0; j < logits.cols(); ++j) {
    const int32_t label = labels[static_cast<size_t>(j)];
    if (label < 0) continue;
    check_label(label, logits.rows(), "cross-entropy");
    const auto r = logits.col(j).template cast<double>();
    const double lse = log_sum_exp(r);
    total += lse - r(label);
    if (dlogits) {
      Eigen::VectorXd d = (r.array() - lse).exp();
      d(label) -= 1;
      dlogits->col(j) = (d * dloss_per_position).template cast<Scalar>();
    }
  }
}

template <typename Scalar>
double cross_entropy_forward(const std::type_identity_t<RowMatrixT<Scalar>>& logits,
                             const TokenBatch& batch, CrossEntropyCache* cache) {
  if (logits.rows() != batch.total_tokens()) {
    throw ModelError("cross-entropy: " + std::to_string(logits.rows()) + " rows of logits for " +
                std::to_string(batch.total_tokens()) + " tokens");
  }
  const auto tokens = batch.tokens();
  Eigen::VectorXd lse = Eigen::VectorXd::Zero(logits.rows());
  double total = 0;
  int64_t predicted = 0;
  for (const SequenceSpan& span : batch.spans()) {
    for (int64_t p = 0; p + 1 < span.length; ++p) {
      const int64_t row = span.begin + p;
      const int32_t label = tokens[row + 1];
      if (label < 0 || label >= logits.cols()) {
        throw ModelError("cross-entropy: label " + std::to_string(label) + " outside [0, " +
                    std::to_string(logits.cols()) + ")");
      }
      const auto r = logits.row(row).template cast<double>();
      lse(row) = log_sum_exp(r);
      total += lse(row) - r(label);
      ++predicted;
    }
  }
  if (predicted == 0) throw ModelError("cross-entropy: no sequence of the batch has two tokens");
  if (cache) {
    cache->log_sum_exp = std::move(lse);
    cache->predicted = predicted;
  }
  return total / static_cast<double>(predicted);
}

template <typename Scalar>
void cross_entropy_backward(const std::type_identity_t<RowMatrixT<Scalar>>& logits,
                            const TokenBatch& batch, const CrossEntropyCache& cache, double dloss,
                            std::type_identity_t<RowMatrixT<Scalar>>& dlogits) {
  if (logits.rows() != batch.total_tokens() || cache.log_sum_exp.size() != logits.rows() ||
      cache.predicted <= 0) {
    throw ModelError("cross-entropy backward: the cache does not belong to " +
                std::to_string(logits.rows()) + " rows of logits for " +
                std::to_string(batch.total_tokens()) + " tokens");
  }
  const auto tokens = batch.tokens();
  const double weight = dloss / static_cast<double>(cache.predicted);
  dlogits.setZero(logits.rows(), logits.cols());
  for (const SequenceSpan& span : batch.spans()) {
    for (int64_t p = 0; p + 1 < span.length; ++p) {
      const int64_t row = span.begin + p;
      const int32_t label = tokens[row + 1];
      if (label < 0 || label >= logits.cols()) {
        throw ModelError("cross-entropy backward: label " + std::to_string(label) + " outside [0, " +
                    std::to_string(logits.cols()) + ")");
      }
      Eigen::RowVectorXd d =
          (logits.row(row).template cast<double>().array() - cache.log_sum_exp(row)).exp();
      d(label) -= 1;
      dlogits.row(row) = (d * weight).template cast<Scalar>();
    }
  }
}

template void cross_entropy_columns<float>(const ActivationsT<float>&, std::span<const int32_t>,
                                           double, ActivationsT<float>*, double&);
template void cross_entropy_columns<double>(const ActivationsT<double>&, std::span<const int32_t>,
                                            double, ActivationsT<double>*, double&);
template double cross_entropy_forward<float>(const RowMatrixT<float>&, const TokenBatch&,
                                             CrossEntropyCache*);
template double cross_entropy_forward<double>(const RowMatrixT<double>&, const TokenBatch&,
                                              CrossEntropyCache*);
template void cross_entropy_backward<float>(const RowMatrixT<float>&, const TokenBatch&,
                                            const CrossEntropyCache&, double, RowMatrixT<float>&);
template void cross_entropy_backward<double>(const RowMatrixT<double>&, const TokenBatch&,
                                             const CrossEntropyCache&, double, RowMatrixT<double>&);

}  // namespace model
