// Where a worker's products run, and the one place that picks their implementation.
//
// --device auto|cpu|cuda[:N]. Today auto and cpu use fhe::PlaneGemm (oneDNN, CPU). cuda asks for
// fhe::CudaPlaneGemm (the fhe_cuda library); without a CUDA build or a usable GPU make_gemm
// refuses it with a clear "not available" error. make_gemm (src/device.cpp) is the single place
// where the device decides the implementation.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "fhe/ciphertext.h"
#include "fhe/context.h"
#include "fhe/noise.h"

namespace fhe_worker {

struct Device {
  enum class Kind { kAuto, kCpu, kCuda };
  Kind kind = Kind::kAuto;
  int index = 0;  // cuda:N

  // "auto", "cpu", "cuda:0".
  std::string name() const;
};

// Parses "auto", "cpu", "cuda" or "cuda:N". Throws fhe_worker::WorkerError otherwise.
Device parse_device(std::string_view text);

// True when this build has the CUDA backend and the machine a usable GPU.
bool cuda_available();

// The homomorphic product by one public int8 matrix M (W, or W^T), whatever runs it. Every
// method may be called from several threads at once. Errors are fhe::FheError.
class Gemm {
 public:
  virtual ~Gemm() = default;

  virtual size_t in_dim() const = 0;
  virtual size_t out_dim() const = 0;
  // Row norms of M (what the noise budget depends on).
  virtual const fhe::WeightBounds& bounds() const = 0;
  // Names the implementation, for the start-up log.
  virtual std::string implementation() const = 0;

  // The product of one fresh ciphertext (validated, noise budget checked).
  virtual void multiply_into(const fhe::CiphertextMatrix& ct, fhe::CiphertextMatrix& out) const = 0;

  // The product of rows [row_begin, row_begin + in_dim()) of a fresh ciphertext with more rows
  // (one part of a stacked input, fhe/stacked_product.h), its noise budget checked for this part
  // alone (the caller checks the stacked one). The default refuses (fhe::FheError): the CPU
  // implementation has it, the CUDA one does not yet.
  virtual void multiply_rows_into(const fhe::CiphertextMatrix& ct, size_t row_begin,
                                  fhe::CiphertextMatrix& out) const;

  // The products of several fresh ciphertexts (outs[i] of ins[i]). An implementation may run
  // them as one GEMM over their concatenated row-blocks; the default calls multiply_into for
  // each. Every input is validated before any work starts.
  virtual void multiply_batch(std::span<const fhe::CiphertextMatrix* const> ins,
                              std::span<fhe::CiphertextMatrix* const> outs) const;

  // Switches a product of this matrix in place to the smallest reply modulus 2^b that still
  // decrypts exactly (fhe/modswitch.h) and returns b, or returns 0 and leaves it unchanged.
  uint32_t switch_reply(const fhe::Context& ctx, fhe::CiphertextMatrix& product) const;
};

struct GemmSpec {
  const int8_t* w = nullptr;  // row-major d_out x d_in, copied (unless `borrow`)
  size_t d_out = 0, d_in = 0;
  bool transpose = false;  // M = W^T
  int threads = 0;         // threads per product; 0: all
  // The CPU product reads `w` in place (it must outlive the product; fhe::PlaneGemmOptions::
  // borrow_weights) instead of a packed copy; the CUDA product copies to the device anyway.
  bool borrow = false;
  // Row stride of `w` in elements (0: d_in): a block of columns of a wider matrix
  // (fhe::PlaneGemmOptions::weight_stride). The CPU product only; CUDA refuses it.
  size_t stride = 0;
};

// Builds the product of `spec` on `device`. Throws fhe_worker::WorkerError for a device this build
// cannot use, fhe::FheError for a shape the implementation refuses.
std::unique_ptr<Gemm> make_gemm(const Device& device, std::shared_ptr<const fhe::Context> ctx,
                                const GemmSpec& spec);

}  // namespace fhe_worker
