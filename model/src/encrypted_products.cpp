#include "model/encrypted_products.h"

#include <algorithm>
#include <string>

#include "fhe/stacked_product.h"
#include "model/error.h"
#include "model/quantize.h"
#include "model/quantized_checkpoint.h"

namespace model {

std::vector<fhe::CiphertextMatrix> EncryptedProducts::multiply_group(
    std::span<const ProjectionId> ids, const fhe::CiphertextMatrix& fresh) {
  std::vector<fhe::CiphertextMatrix> out;
  for (const ProjectionId id : ids) out.push_back(multiply(id, /*transpose=*/false, fresh));
  return out;
}

fhe::WeightBounds EncryptedProducts::stacked_bounds(std::span<const ProjectionId> ids) {
  std::vector<fhe::WeightBounds> parts;
  for (const ProjectionId id : ids) parts.push_back(bounds(id, /*transpose=*/true));
  return fhe::stacked_bounds(parts);
}

// One projection: the int8 weight inside an evaluator per direction, and its scales.
struct LocalEncryptedProducts::Projection {
  std::unique_ptr<fhe::ProductEvaluator> gemm;             // W * C
  std::unique_ptr<fhe::ProductEvaluator> transposed_gemm;  // W^T * C, built on first use
  std::vector<int8_t> values;                              // row-major d_out x d_in, for the latter
  std::vector<float> scales;
};

LocalEncryptedProducts::LocalEncryptedProducts(const LlamaWeights& weights,
                                               std::shared_ptr<const fhe::Context> ctx,
                                               std::vector<ProjectionKind> kinds,
                                               EvaluatorFactory factory)
    : config_(weights.config), ctx_(std::move(ctx)), factory_(std::move(factory)) {
  if (!factory_) throw ModelError("encrypted products: no evaluator factory");
  try {
    for (const ProjectionId id : llama_projections(config_)) {
      if (!kinds.empty() && std::find(kinds.begin(), kinds.end(), id.kind) == kinds.end()) {
        projections_.push_back(nullptr);
        continue;
      }
      QuantizedWeight q = quantized_projection(weights, id);  // from memory or the files
      auto p = std::make_unique<Projection>();
      p->gemm = factory_(ctx_, fhe::ProductSpec{.w = q.values.data(),
                                                .d_out = static_cast<size_t>(q.rows),
                                                .d_in = static_cast<size_t>(q.cols),
                                                .transpose = false});
      p->values = std::move(q.values);
      p->scales = std::move(q.scales);
      projections_.push_back(std::move(p));
    }
  } catch (const fhe::FheError& e) {
    throw ModelError(std::string("encrypted backend: ") + e.what());
  }
}

LocalEncryptedProducts::~LocalEncryptedProducts() = default;

LocalEncryptedProducts::Projection& LocalEncryptedProducts::at(ProjectionId id) const {
  Projection* p = projections_[projection_index(config_, id)].get();
  if (p == nullptr)
    throw ModelError("encrypted products: " + projection_name(id) + " was not built");
  return *p;
}

ProjectionDims LocalEncryptedProducts::dims(ProjectionId id) const {
  const Projection& p = at(id);
  return {static_cast<int64_t>(p.gemm->out_dim()), static_cast<int64_t>(p.gemm->in_dim())};
}

std::span<const float> LocalEncryptedProducts::scales(ProjectionId id) const {
  return at(id).scales;
}

const fhe::ProductEvaluator& LocalEncryptedProducts::gemm(ProjectionId id, bool transpose) {
  Projection& p = at(id);
  if (!transpose) return *p.gemm;
  if (!p.transposed_gemm) {
    p.transposed_gemm = factory_(ctx_, fhe::ProductSpec{.w = p.values.data(),
                                                        .d_out = p.gemm->out_dim(),
                                                        .d_in = p.gemm->in_dim(),
                                                        .transpose = true});
  }
  return *p.transposed_gemm;
}

fhe::WeightBounds LocalEncryptedProducts::bounds(ProjectionId id, bool transpose) {
  return gemm(id, transpose).bounds();
}

fhe::CiphertextMatrix LocalEncryptedProducts::multiply(ProjectionId id, bool transpose,
                                                       const fhe::CiphertextMatrix& fresh) {
  return gemm(id, transpose).multiply(fresh);
}

fhe::CiphertextMatrix LocalEncryptedProducts::multiply_stacked(std::span<const ProjectionId> ids,
                                                               const fhe::CiphertextMatrix& fresh) {
  std::vector<const fhe::ProductEvaluator*> parts;
  for (const ProjectionId id : ids) {
    parts.push_back(&gemm(id, /*transpose=*/true));
    if (!parts.back()->stacks()) {
      throw StackedProductRefused("encrypted products: " + parts.back()->implementation() +
                                  " does not compute stacked products");
    }
  }
  return fhe::stacked_multiply(parts, fresh);
}

}  // namespace model
