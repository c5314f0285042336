// The CUDA product: fhe::CudaPlaneGemm behind the evaluator interface (with or without CUDA: the
// fallback's CudaPlaneGemm refuses to construct).
#include "fhe/cuda_evaluator.h"

#include <string>
#include <utility>

#include "fhe/error.h"

namespace fhe {

CudaEvaluator::CudaEvaluator(std::shared_ptr<const Context> ctx, const ProductSpec& spec,
                             int device)
    : ctx_(std::move(ctx)) {
  if (spec.stride != 0 && spec.stride != spec.d_in) {
    throw FheError("the CUDA product takes dense weights only");
  }
  gemm_ =
      std::make_unique<CudaPlaneGemm>(ctx_, spec.w, spec.d_out, spec.d_in, spec.transpose, device);
}

std::string CudaEvaluator::implementation() const {
  return std::string("cuda plane GEMM on device ") + std::to_string(gemm_->device()) + " (" +
         gemm_->device_name() + ")";
}

void CudaEvaluator::multiply_into(const CiphertextMatrix& ct, CiphertextMatrix& out) const {
  gemm_->multiply_into(ct, out);
}

std::unique_ptr<ProductEvaluator> make_cuda_evaluator(std::shared_ptr<const Context> ctx,
                                                      const ProductSpec& spec, int device) {
  return std::make_unique<CudaEvaluator>(std::move(ctx), spec, device);
}

EvaluatorFactory cuda_evaluator_factory(int device) {
  return [device](std::shared_ptr<const Context> ctx, const ProductSpec& spec) {
    return make_cuda_evaluator(std::move(ctx), spec, device);
  };
}

}  // namespace fhe
