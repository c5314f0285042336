// The CPU implementation of fhe::ProductEvaluator (evaluator.h): fhe::PlaneGemm (oneDNN).
//
// A batch runs as ONE GEMM call over the concatenated row-blocks of every input (BatchLayout:
// first all c0 blocks, then all seed-expanded mask blocks); the products equal separate
// multiply_into calls bit for bit. Stacked parts (multiply_rows_into) and strided weights (a
// block of columns of a wider matrix, ProductSpec::stride) are supported.
#pragma once

#include <memory>
#include <span>
#include <string>

#include "fhe/evaluator.h"
#include "fhe/plane_gemm.h"

namespace fhe {

class CpuEvaluator final : public ProductEvaluator {
 public:
  // Throws FheError for a shape PlaneGemm refuses (empty, an inner dimension that overflows).
  CpuEvaluator(std::shared_ptr<const Context> ctx, const ProductSpec& spec);

  size_t in_dim() const override { return gemm_.in_dim(); }
  size_t out_dim() const override { return gemm_.out_dim(); }
  const WeightBounds& bounds() const override { return gemm_.bounds(); }
  const Context& context() const override { return *ctx_; }
  // "cpu plane GEMM (oneDNN's implementation, 6 planes of 8 bits)".
  std::string implementation() const override;

  void multiply_into(const CiphertextMatrix& ct, CiphertextMatrix& out) const override;
  bool stacks() const override { return true; }
  void multiply_rows_into(const CiphertextMatrix& ct, size_t row_begin,
                          CiphertextMatrix& out) const override;
  void multiply_batch(std::span<const CiphertextMatrix* const> ins,
                      std::span<CiphertextMatrix* const> outs) const override;

  const PlaneGemm& gemm() const { return gemm_; }

 private:
  std::shared_ptr<const Context> ctx_;
  PlaneGemm gemm_;
  int threads_;
};

// An EvaluatorFactory: a CpuEvaluator.
std::unique_ptr<ProductEvaluator> make_cpu_evaluator(std::shared_ptr<const Context> ctx,
                                                     const ProductSpec& spec);

}  // namespace fhe
