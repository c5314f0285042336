#include "fhe/stacked_product.h"

#include <cmath>
#include <string>
#include <vector>

#include "fhe/encryptor.h"
#include "fhe/evaluator.h"
#include "fhe/modarith.h"

namespace fhe {

WeightBounds stacked_bounds(std::span<const WeightBounds> parts) {
  WeightBounds b{0, 0, 0};
  double l2_squared = 0;
  for (const WeightBounds& p : parts) {
    b.max_row_l1 += p.max_row_l1;
    l2_squared += p.max_row_l2 * p.max_row_l2;
    b.inner_dim += p.inner_dim;
  }
  b.max_row_l2 = std::sqrt(l2_squared);
  return b;
}

void add_product_into(const Context& ctx, CiphertextMatrix& acc, const CiphertextMatrix& y) {
  if (acc.kind != CtKind::kProduct || y.kind != CtKind::kProduct) {
    throw FheError("only product ciphertexts (not modulus-switched) can be added");
  }
  if (acc.params_id != y.params_id || acc.rows != y.rows || acc.cols != y.cols ||
      acc.log2_delta != y.log2_delta || acc.c0.size() != y.c0.size() ||
      acc.c1.size() != y.c1.size() || acc.c0.size() != acc.c1.size()) {
    throw FheError("added products differ in shape, scale or parameter set (" +
                   std::to_string(acc.rows) + " x " + std::to_string(acc.cols) + " at 2^" +
                   std::to_string(acc.log2_delta) + " and " + std::to_string(y.rows) + " x " +
                   std::to_string(y.cols) + " at 2^" + std::to_string(y.log2_delta) + ")");
  }
  const uint64_t q = ctx.q();
  const auto count = static_cast<int64_t>(acc.c0.size());
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < count; ++i) {
    acc.c0[i] = add_mod(acc.c0[i], y.c0[i], q);
    acc.c1[i] = add_mod(acc.c1[i], y.c1[i], q);
  }
}

namespace {

// Part: PlaneGemm or ProductEvaluator (the same members).
template <typename Part>
CiphertextMatrix stacked_multiply_parts(std::span<const Part* const> parts,
                                        const CiphertextMatrix& fresh) {
  if (parts.empty()) throw FheError("a stacked product needs at least one matrix");
  std::vector<WeightBounds> bounds;
  uint64_t rows = 0;
  for (const Part* p : parts) {
    if (p->out_dim() != parts[0]->out_dim()) {
      throw FheError("stacked product: matrices of " + std::to_string(p->out_dim()) + " and " +
                     std::to_string(parts[0]->out_dim()) + " output rows");
    }
    bounds.push_back(p->bounds());
    rows += p->in_dim();
  }
  if (fresh.rows != rows) {
    throw FheError("ciphertext has " + std::to_string(fresh.rows) +
                   " rows but the stacked matrices take " + std::to_string(rows));
  }
  const Context& ctx = parts[0]->context();
  // The parts check their own (smaller) budgets; the sum needs the stacked one.
  check_fresh_input(ctx, fresh, rows, parts[0]->out_dim(), stacked_bounds(bounds));
  CiphertextMatrix acc, part;
  size_t at = 0;
  for (size_t j = 0; j < parts.size(); ++j) {
    CiphertextMatrix& out = j == 0 ? acc : part;
    parts[j]->multiply_rows_into(fresh, at, out);
    if (j > 0) add_product_into(ctx, acc, part);
    at += parts[j]->in_dim();
  }
  return acc;
}

}  // namespace

CiphertextMatrix stacked_multiply(std::span<const PlaneGemm* const> parts,
                                  const CiphertextMatrix& fresh) {
  return stacked_multiply_parts(parts, fresh);
}

CiphertextMatrix stacked_multiply(std::span<const ProductEvaluator* const> parts,
                                  const CiphertextMatrix& fresh) {
  return stacked_multiply_parts(parts, fresh);
}

}  // namespace fhe
