// EncryptedProducts: the worker's half of an encrypted projection, as the participant sees it.
//
// EncryptedBackend (encrypted_backend.h) does the participant's half of every projection
// (quantize, encrypt, decrypt, dequantize) and asks an EncryptedProducts for the rest: the shape
// of the projection, the per output channel scales of its int8 weight (to dequantize), the row
// norms of W or W^T (to choose the encryption scale), and the homomorphic product itself,
// W * C or W^T * C of a fresh ciphertext, and the products of a group of projections that share
// their input (q, k, v; gate, up): several products of one fresh ciphertext forward, and in the
// backward pass ONE product sum_j W_j^T C_j of the stacked gradients (fhe/stacked_product.h).
// Implementations:
//   LocalEncryptedProducts  fhe::ProductEvaluators in this process (below; the CPU one by
//                           default, any EvaluatorFactory's, e.g. fhe::cuda_evaluator_factory)
//   participant::WorkerProducts  requests to a pool of fhe_worker processes (participant/)
// No method ever sees the secret key: a product needs only public data and the ciphertext.
#pragma once

#include <memory>
#include <span>
#include <vector>

#include "fhe/ciphertext.h"
#include "fhe/cpu_evaluator.h"
#include "fhe/evaluator.h"
#include "fhe/noise.h"
#include "model/error.h"
#include "model/llama_weights.h"
#include "model/projection.h"

namespace model {

// Builds the in-process product of one projection and direction (fhe/evaluator.h).
using EvaluatorFactory = fhe::EvaluatorFactory;

// Thrown by EncryptedProducts::multiply_stacked when the products cannot be stacked at all (a
// worker device without stacked products): the caller then sends the parts one at a time.
class StackedProductRefused : public ModelError {
 public:
  using ModelError::ModelError;
};

class EncryptedProducts {
 public:
  virtual ~EncryptedProducts() = default;

  // The shape of `id`'s weight (d_out x d_in). Throws model::ModelError for a projection the
  // implementation does not have.
  virtual ProjectionDims dims(ProjectionId id) const = 0;
  // One scale per output channel (d_out) of the int8 weight: W ~ Wq * diag(scales).
  virtual std::span<const float> scales(ProjectionId id) const = 0;
  // Row norms of the matrix the ciphertext meets: W (transpose = false) or W^T.
  virtual fhe::WeightBounds bounds(ProjectionId id, bool transpose) = 0;
  // W * C (transpose = false; C has d_in rows) or W^T * C (C has d_out rows) of a fresh
  // ciphertext: a product ciphertext, possibly modulus-switched. Throws model::ModelError or
  // fhe::FheError naming the failure.
  virtual fhe::CiphertextMatrix multiply(ProjectionId id, bool transpose,
                                         const fhe::CiphertextMatrix& fresh) = 0;

  // W_j * C for every projection of `ids` (all with the same d_in), of one fresh ciphertext C:
  // one product per projection, in order. The default calls multiply() for each. Throws like
  // multiply().
  virtual std::vector<fhe::CiphertextMatrix> multiply_group(std::span<const ProjectionId> ids,
                                                            const fhe::CiphertextMatrix& fresh);
  // sum_j W_j^T C_j of one fresh ciphertext whose rows are C_0, C_1, ... (d_out_j rows each)
  // stacked in the order of `ids` (all with the same d_in): ONE product ciphertext of d_in rows.
  // Its scale must fit stacked_bounds(ids). Throws like multiply(), or StackedProductRefused.
  virtual fhe::CiphertextMatrix multiply_stacked(std::span<const ProjectionId> ids,
                                                 const fhe::CiphertextMatrix& fresh) = 0;

  // The row norms the stacked product's ciphertext meets: fhe::stacked_bounds of the parts'
  // bounds(id, true).
  fhe::WeightBounds stacked_bounds(std::span<const ProjectionId> ids);
};

// The products in process: every projection of `weights` quantized per output channel
// (quantize_weight_rows, exactly as a worker does) inside an fhe::ProductEvaluator per direction,
// built by `factory` (fhe::make_cpu_evaluator by default; every implementation gives the same
// products bit for bit). The transposed evaluator of a projection is built on its first use (an
// inference-only user never pays for it, and a shape only the transposed product refuses does not
// stop the forward pass).
// Not thread-safe: one caller at a time.
class LocalEncryptedProducts : public EncryptedProducts {
 public:
  // Throws model::ModelError when the fhe library refuses a projection. With `kinds` non-empty only
  // the projections of those kinds are built; the others throw model::ModelError on use.
  LocalEncryptedProducts(const LlamaWeights& weights, std::shared_ptr<const fhe::Context> ctx,
                         std::vector<ProjectionKind> kinds = {},
                         EvaluatorFactory factory = fhe::make_cpu_evaluator);
  ~LocalEncryptedProducts() override;

  ProjectionDims dims(ProjectionId id) const override;
  std::span<const float> scales(ProjectionId id) const override;
  fhe::WeightBounds bounds(ProjectionId id, bool transpose) override;
  fhe::CiphertextMatrix multiply(ProjectionId id, bool transpose,
                                 const fhe::CiphertextMatrix& fresh) override;
  // Each part's transposed evaluator over its rows of `fresh`, the products added mod q
  // (fhe::stacked_multiply). Throws StackedProductRefused when an evaluator does not stack
  // (fhe::ProductEvaluator::stacks).
  fhe::CiphertextMatrix multiply_stacked(std::span<const ProjectionId> ids,
                                         const fhe::CiphertextMatrix& fresh) override;

 private:
  struct Projection;
  Projection& at(ProjectionId id) const;
  const fhe::ProductEvaluator& gemm(ProjectionId id, bool transpose);

  LlamaConfig config_;
  std::shared_ptr<const fhe::Context> ctx_;
  EvaluatorFactory factory_;
  std::vector<std::unique_ptr<Projection>> projections_;  // indexed by projection_index
};

}  // namespace model
