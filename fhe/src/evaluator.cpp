// The evaluator interface's defaults and the helpers every implementation shares.
#include "fhe/evaluator.h"

#include <omp.h>

#include <algorithm>
#include <chrono>
#include <string>

#include "fhe/encryptor.h"
#include "fhe/error.h"
#include "fhe/modswitch.h"
#include "fhe/plane_gemm.h"
#include "fhe/prng.h"

namespace fhe {

CiphertextMatrix ProductEvaluator::multiply(const CiphertextMatrix& ct) const {
  CiphertextMatrix out;
  multiply_into(ct, out);
  return out;
}

void ProductEvaluator::multiply_rows_into(const CiphertextMatrix&, size_t,
                                          CiphertextMatrix&) const {
  throw FheError("stacked products are not implemented by " + implementation() +
                 "; send one request per projection");
}

void ProductEvaluator::multiply_batch(std::span<const CiphertextMatrix* const> ins,
                                      std::span<CiphertextMatrix* const> outs) const {
  if (ins.size() != outs.size()) throw FheError("multiply_batch: inputs and outputs differ");
  for (size_t i = 0; i < ins.size(); ++i) multiply_into(*ins[i], *outs[i]);
}

uint32_t ProductEvaluator::switch_reply(CiphertextMatrix& product) const {
  if (product.kind != CtKind::kProduct || product.rows != out_dim()) {
    throw FheError("switch_reply expects a product of this matrix");
  }
  return fhe::switch_reply(context(), product, bounds(), out_dim() * product.cols);
}

void check_fresh_input(const Context& ctx, const CiphertextMatrix& ct, size_t in_dim,
                       size_t out_dim, const WeightBounds& bounds, InputRows rows) {
  validate(ctx, ct, rows.check_range);
  if (ct.kind != CtKind::kFresh) throw FheError("only fresh ciphertexts can be multiplied");
  if (!rows.row_begin) {
    if (ct.rows != in_dim) {
      throw FheError("ciphertext has " + std::to_string(ct.rows) + " rows but the matrix expects " +
                     std::to_string(in_dim));
    }
  } else if (*rows.row_begin > ct.rows || ct.rows - *rows.row_begin < in_dim) {
    throw FheError("ciphertext rows [" + std::to_string(*rows.row_begin) + ", " +
                   std::to_string(*rows.row_begin + in_dim) + ") are not inside its " +
                   std::to_string(ct.rows) + " rows");
  }
  check_product(ctx.params(), ct.log2_delta, bounds, out_dim * ct.cols);
}

void start_product(const CiphertextMatrix& ct, size_t out_dim, size_t n, CiphertextMatrix& out) {
  const size_t blocks = ct.blocks(n);
  out.params_id = ct.params_id;
  out.kind = CtKind::kProduct;
  out.rows = out_dim;
  out.cols = ct.cols;
  out.log2_delta = ct.log2_delta;
  out.log2_modulus = 0;
  out.seed = ct.seed;
  out.c0.resize(blocks * out_dim * n);
  out.c1.resize(blocks * out_dim * n);
}

void expand_mask_rows(const Context& ctx, const Seed& seed, uint64_t first_row, size_t rows,
                      uint64_t* out, int threads) {
  GemmPhases* const phases = current_gemm_phases();  // the OpenMP threads below do not see it
  const auto start = std::chrono::steady_clock::now();
  const size_t n = ctx.n();
#pragma omp parallel num_threads(threads > 0 ? threads : omp_get_max_threads())
  {
    SeedExpander ex(seed, n, ctx.q());
#pragma omp for schedule(static)
    for (int64_t j = 0; j < static_cast<int64_t>(rows); ++j) {
      ex.expand_row(first_row + static_cast<uint64_t>(j), out + static_cast<size_t>(j) * n);
    }
  }
  if (phases) {
    phases->seed_expansion_ns +=
        static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                  std::chrono::steady_clock::now() - start)
                                  .count());
  }
}

BatchLayout batch_layout(size_t n, size_t in_dim, size_t out_dim,
                         std::span<const CiphertextMatrix* const> ins) {
  BatchLayout layout;
  layout.n = n;
  layout.in_dim = in_dim;
  layout.out_dim = out_dim;
  for (const CiphertextMatrix* ct : ins) {
    layout.first_block.push_back(layout.blocks);
    layout.blocks += ct->blocks(n);
  }
  return layout;
}

void gather_batch(const Context& ctx, const BatchLayout& layout,
                  std::span<const CiphertextMatrix* const> ins, uint64_t* c, int threads) {
  const size_t block = layout.in_dim * layout.n;
  uint64_t* const masks = c + layout.blocks * block;
  for (size_t i = 0; i < ins.size(); ++i) {
    std::copy(ins[i]->c0.begin(), ins[i]->c0.end(), c + layout.first_block[i] * block);
  }
  for (size_t i = 0; i < ins.size(); ++i) {
    expand_mask_rows(ctx, ins[i]->seed, 0, ins[i]->blocks(layout.n) * layout.in_dim,
                     masks + layout.first_block[i] * block, threads);
  }
}

void scatter_batch(const BatchLayout& layout, std::span<const CiphertextMatrix* const> ins,
                   const uint64_t* y, std::span<CiphertextMatrix* const> outs) {
  const size_t block = layout.out_dim * layout.n;
  const uint64_t* const y1 = y + layout.blocks * block;
  for (size_t i = 0; i < ins.size(); ++i) {
    CiphertextMatrix& o = *outs[i];
    start_product(*ins[i], layout.out_dim, layout.n, o);
    const size_t at = layout.first_block[i] * block;
    std::copy_n(y + at, o.c0.size(), o.c0.begin());
    std::copy_n(y1 + at, o.c1.size(), o.c1.begin());
  }
}

}  // namespace fhe
