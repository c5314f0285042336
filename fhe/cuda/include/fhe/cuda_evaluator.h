// The CUDA implementation of fhe::ProductEvaluator (evaluator.h): fhe::CudaPlaneGemm.
//
// Bit-identical to fhe::CpuEvaluator. Batches run one product after another (the interface's
// default multiply_batch); stacked parts (multiply_rows_into) and strided weights are not
// implemented yet (stacks() is false; a strided ProductSpec is refused). ProductSpec::threads and
// ::borrow do not apply: the weights are copied to the device.
//
// Built without CUDA (fhe/cuda/src/fallback.cpp) the constructor throws FheError("built without
// CUDA"), like CudaPlaneGemm's.
#pragma once

#include <memory>
#include <string>

#include "fhe/cuda_plane_gemm.h"
#include "fhe/evaluator.h"

namespace fhe {

class CudaEvaluator final : public ProductEvaluator {
 public:
  // Throws FheError for strided weights, a shape CudaPlaneGemm refuses, a missing device or any
  // CUDA failure.
  CudaEvaluator(std::shared_ptr<const Context> ctx, const ProductSpec& spec, int device = 0);

  size_t in_dim() const override { return gemm_->in_dim(); }
  size_t out_dim() const override { return gemm_->out_dim(); }
  const WeightBounds& bounds() const override { return gemm_->bounds(); }
  const Context& context() const override { return *ctx_; }
  // "cuda plane GEMM on device 0 (NVIDIA H100 80GB HBM3)".
  std::string implementation() const override;

  void multiply_into(const CiphertextMatrix& ct, CiphertextMatrix& out) const override;

  const CudaPlaneGemm& gemm() const { return *gemm_; }

 private:
  std::shared_ptr<const Context> ctx_;
  std::unique_ptr<CudaPlaneGemm> gemm_;
};

// A CudaEvaluator on `device`.
std::unique_ptr<ProductEvaluator> make_cuda_evaluator(std::shared_ptr<const Context> ctx,
                                                      const ProductSpec& spec, int device = 0);

// An EvaluatorFactory that builds CudaEvaluators on `device`.
EvaluatorFactory cuda_evaluator_factory(int device = 0);

}  // namespace fhe
