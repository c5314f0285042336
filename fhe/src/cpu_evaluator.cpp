// The CPU product: fhe::PlaneGemm behind the evaluator interface.
#include "fhe/cpu_evaluator.h"

#include <string>
#include <utility>

#include "fhe/error.h"

namespace fhe {

CpuEvaluator::CpuEvaluator(std::shared_ptr<const Context> ctx, const ProductSpec& spec)
    : ctx_(ctx),
      gemm_(std::move(ctx), spec.w, spec.d_out, spec.d_in, spec.transpose,
            PlaneGemmOptions{.threads = spec.threads,
                             .borrow_weights = spec.borrow,
                             .weight_stride = spec.stride}),
      threads_(spec.threads) {}

std::string CpuEvaluator::implementation() const {
  return std::string("cpu plane GEMM (") + gemm_.implementation() + ", " +
         std::to_string(gemm_.planes()) + " planes of " + std::to_string(gemm_.digit_bits()) +
         " bits)";
}

void CpuEvaluator::multiply_into(const CiphertextMatrix& ct, CiphertextMatrix& out) const {
  gemm_.multiply_into(ct, out);
}

void CpuEvaluator::multiply_rows_into(const CiphertextMatrix& ct, size_t row_begin,
                                      CiphertextMatrix& out) const {
  gemm_.multiply_rows_into(ct, row_begin, out);
}

void CpuEvaluator::multiply_batch(std::span<const CiphertextMatrix* const> ins,
                                  std::span<CiphertextMatrix* const> outs) const {
  if (ins.size() != outs.size()) throw FheError("multiply_batch: inputs and outputs differ");
  if (ins.size() == 1) return multiply_into(*ins[0], *outs[0]);
  const Context& ctx = *ctx_;
  for (const CiphertextMatrix* ct : ins) {
    check_fresh_input(ctx, *ct, in_dim(), out_dim(), bounds());
  }
  const BatchLayout layout = batch_layout(ctx.n(), in_dim(), out_dim(), ins);
  CoeffVector c(layout.input_words()), y(layout.output_words());
  gather_batch(ctx, layout, ins, c.data(), threads_);
  gemm_.multiply_blocks(c.data(), y.data(), 2 * layout.blocks);
  scatter_batch(layout, ins, y.data(), outs);
}

std::unique_ptr<ProductEvaluator> make_cpu_evaluator(std::shared_ptr<const Context> ctx,
                                                     const ProductSpec& spec) {
  return std::make_unique<CpuEvaluator>(std::move(ctx), spec);
}

}  // namespace fhe
