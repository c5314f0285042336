// The encrypted matrix product, whatever computes it: fhe::ProductEvaluator.
//
// A worker's whole job, and the in-process encrypted backend's, is the homomorphic product
// M * C of a fresh ciphertext C by a public int8 matrix M (= W or W^T): Y0 = M*C0 mod q and
// Y1 = M*A_hat mod q, A_hat the seed-expanded c1 rows (plane_gemm.h). ProductEvaluator is that
// product as an interface; its implementations give the same product bit for bit:
//   fhe::CpuEvaluator   fhe::PlaneGemm, oneDNN on the CPU (cpu_evaluator.h)
//   fhe::CudaEvaluator  fhe::CudaPlaneGemm on an NVIDIA GPU (fhe_cuda, cuda_evaluator.h)
// An EvaluatorFactory builds one from a ProductSpec; fhe_worker's --device and model's
// EncryptedBackend each pick a factory, and nothing else depends on the implementation.
//
// This header also holds what every implementation shares: the check of a fresh input
// (check_fresh_input), the header of a product (start_product), the seed expansion of the mask
// rows (expand_mask_rows) and the row-block layout of a batch of inputs for one GEMM call
// (BatchLayout, gather_batch, scatter_batch). The reply's modulus switch is fhe::switch_reply
// (modswitch.h).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "fhe/ciphertext.h"
#include "fhe/context.h"
#include "fhe/noise.h"

namespace fhe {

// What a product multiplies by.
struct ProductSpec {
  const int8_t* w = nullptr;  // row-major d_out x d_in, copied (unless `borrow`)
  size_t d_out = 0, d_in = 0;
  bool transpose = false;  // M = W^T
  int threads = 0;         // threads per product; 0: all
  // The CPU product reads `w` in place (it must outlive the product; PlaneGemmOptions::
  // borrow_weights) instead of a packed copy; the CUDA product copies to the device anyway.
  bool borrow = false;
  // Row stride of `w` in elements (0: d_in): a block of columns of a wider matrix
  // (PlaneGemmOptions::weight_stride). The CPU product only; CUDA refuses it.
  size_t stride = 0;
};

// The homomorphic product by one public int8 matrix M (W, or W^T), whatever runs it. Every
// method may be called from several threads at once. Errors are fhe::FheError.
class ProductEvaluator {
 public:
  virtual ~ProductEvaluator() = default;

  virtual size_t in_dim() const = 0;
  virtual size_t out_dim() const = 0;
  // Row norms of M (what the noise budget depends on).
  virtual const WeightBounds& bounds() const = 0;
  virtual const Context& context() const = 0;
  // Names the implementation, for logs.
  virtual std::string implementation() const = 0;

  // The product of one fresh ciphertext of in_dim() rows (checked with check_fresh_input),
  // reusing out's storage.
  virtual void multiply_into(const CiphertextMatrix& ct, CiphertextMatrix& out) const = 0;
  CiphertextMatrix multiply(const CiphertextMatrix& ct) const;

  // True when multiply_rows_into is implemented (the CPU product; not yet the CUDA one).
  virtual bool stacks() const { return false; }
  // The product of rows [row_begin, row_begin + in_dim()) of a fresh ciphertext with more rows
  // (one part of a stacked input, fhe/stacked_product.h), its mask rows expanded at their place
  // in the whole matrix and its noise budget checked for this part alone (the caller checks the
  // stacked one). The default refuses (FheError): see stacks().
  virtual void multiply_rows_into(const CiphertextMatrix& ct, size_t row_begin,
                                  CiphertextMatrix& out) const;

  // The products of several fresh ciphertexts (outs[i] of ins[i]). An implementation may run
  // them as one GEMM over their concatenated row-blocks (BatchLayout); the default calls
  // multiply_into for each. Every input is checked before any work starts.
  virtual void multiply_batch(std::span<const CiphertextMatrix* const> ins,
                              std::span<CiphertextMatrix* const> outs) const;

  // Switches a product of this matrix (kind kProduct, out_dim() rows) in place to the smallest
  // reply modulus 2^b that still decrypts exactly (fhe::switch_reply) and returns b, or returns 0
  // and leaves it unchanged. Throws FheError for anything but a product of this matrix.
  uint32_t switch_reply(CiphertextMatrix& product) const;
};

// Builds the product of a spec (CPU: make_cpu_evaluator; CUDA: cuda_evaluator_factory). Throws
// FheError for a shape the implementation refuses.
using EvaluatorFactory = std::function<std::unique_ptr<ProductEvaluator>(
    std::shared_ptr<const Context> ctx, const ProductSpec& spec)>;

// ---- What every implementation shares ----------------------------------------------------------

// Which rows of a fresh input a product reads, and how much of it to check.
struct InputRows {
  // Rows [row_begin, row_begin + in_dim) of an input with any number of rows (a part of a
  // stacked input); unset: the input must have exactly in_dim rows.
  std::optional<size_t> row_begin = std::nullopt;
  // false: the coefficients' range (< q) is checked later, while they are read (CUDA).
  bool check_range = true;
};

// Throws FheError unless `ct` can be multiplied by a matrix of in_dim columns, out_dim rows and
// `bounds`: a valid ciphertext of ctx (validate: parameter set, sizes, coefficient range), fresh,
// with the rows `rows` asks for, and a scale whose product decrypts exactly (check_product over
// out_dim x ct.cols outputs). The one input check of every product.
void check_fresh_input(const Context& ctx, const CiphertextMatrix& ct, size_t in_dim,
                       size_t out_dim, const WeightBounds& bounds, InputRows rows = {});

// Makes `out` the product header of fresh input `ct` by a matrix of out_dim rows (kind kProduct,
// its tokens, scale, parameter set and seed) with c0 and c1 sized blocks x out_dim x n (their
// contents are left to the product).
void start_product(const CiphertextMatrix& ct, size_t out_dim, size_t n, CiphertextMatrix& out);

// Expands mask rows [first_row, first_row + rows) of `seed` (fhe::SeedExpander, NTT domain) into
// out (rows x n), over `threads` OpenMP threads (0: all). The time goes to the calling thread's
// GemmPhases::seed_expansion_ns when a ScopedGemmPhases is alive (plane_gemm.h).
void expand_mask_rows(const Context& ctx, const Seed& seed, uint64_t first_row, size_t rows,
                      uint64_t* out, int threads = 0);

// The row-block layout of a batch of fresh inputs for ONE GEMM call over blocks of in_dim x n
// coefficients (a block: one ciphertext row per feature, n token slots; tokens t of an input
// sit in its block t / n at slot t % n): first the c0 blocks of every input in order, then the
// expanded mask (A_hat) blocks of every input in the same order. The products come out in the
// same layout with blocks of out_dim x n.
struct BatchLayout {
  size_t n = 0, in_dim = 0, out_dim = 0;
  size_t blocks = 0;                // blocks of every input together
  std::vector<size_t> first_block;  // input i's first block (in the c0 half and the mask half)
  size_t input_words() const { return 2 * blocks * in_dim * n; }
  size_t output_words() const { return 2 * blocks * out_dim * n; }
};

// The layout of `ins` (each of in_dim rows; not checked here).
BatchLayout batch_layout(size_t n, size_t in_dim, size_t out_dim,
                         std::span<const CiphertextMatrix* const> ins);

// Writes the batch's input in `layout` into c (layout.input_words()): every c0, then every
// input's mask rows expanded from its seed (expand_mask_rows, `threads` threads).
void gather_batch(const Context& ctx, const BatchLayout& layout,
                  std::span<const CiphertextMatrix* const> ins, uint64_t* c, int threads = 0);

// Splits y (layout.output_words(), the GEMM's output) into the products outs[i] of ins[i]
// (start_product headers; c0 from the first half, c1 from the second).
void scatter_batch(const BatchLayout& layout, std::span<const CiphertextMatrix* const> ins,
                   const uint64_t* y, std::span<CiphertextMatrix* const> outs);

}  // namespace fhe
