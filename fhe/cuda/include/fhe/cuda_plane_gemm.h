// The homomorphic product M * C with a public int8 matrix M (= W or W^T) on an NVIDIA GPU.
//
// Same contract and bit-identical results as fhe::PlaneGemm (plane_gemm.h): Y0 = M*C0 mod q and
// Y1 = M*A_hat mod q, A_hat the seed-expanded c1 rows in the NTT domain. On the device:
//   1. seed expansion: AES-128-CTR exactly as fhe::SeedExpander (prng.h), a few spare words per
//      row, rejected words (>= q) compacted away with a block scan; a row that still runs out
//      (probability ~ 2^-500) is expanded by SeedExpander on the host and uploaded;
//   2. digit split: each coefficient c < q is taken as its representative v = c or c - q in
//      [-128 S, 127 S], S = (2^48 - 1) / 255, and cut into 6 signed digits in [-128, 127] with
//      v = sum_k 256^k d_k (the range holds exactly 2^48 > q integers, so 6 planes suffice);
//   3. one cuBLASLt s8 x s8 -> s32 GEMM over all 12 planes of C0 and A_hat of a group of blocks;
//   4. recombination sum_k 256^k P_k mod q.
// The inner dimension must stay below 2^17 (int32 plane sums); check_product refuses far earlier
// for real weights.
//
// Transfers: C0 goes up and Y0, Y1 come down as 6 bytes per coefficient (every coefficient is
// below q < 2^48), through page-locked staging buffers that the object keeps (grown as needed,
// freed by the destructor), in chunks: host threads pack (and range-check) the next chunk of C0
// while the previous one is copied, and unpack each chunk of the product into the caller's
// CiphertextMatrix as soon as it has arrived. Inputs longer than one device group alternate
// between two staging slots, so the host packs and unpacks one group while the device computes
// the next.
//
// Built without CUDA (FEDLORA_CUDA=OFF or no nvcc), the library still links: constructors throw
// fhe::FheError("built without CUDA") and cuda_device_count() returns 0.
//
// Thread safety: multiply() may be called from several threads at once (calls are serialised
// on the object's stream; use one object per stream for concurrency).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "fhe/ciphertext.h"
#include "fhe/context.h"
#include "fhe/noise.h"
#include "fhe/prng.h"

namespace fhe {

// Number of usable CUDA devices; 0 without a driver, a device or CUDA support. Never throws.
int cuda_device_count() noexcept;

// Phase times of the last multiply (seconds, summed over its groups), for benchmarks. All but
// download_s are CUDA event times on the object's stream.
struct CudaGemmTiming {
  double upload_s = 0;     // C0 host -> device: host packing overlapped with the pinned copies,
                           // plus the unpacking kernel
  double expand_s = 0;     // seed expansion of A_hat
  double split_s = 0;      // digit split of C0 and A_hat
  double gemm_s = 0;       // cuBLASLt int8 GEMMs
  double recombine_s = 0;  // recombination modulo q (and packing of Y0, Y1 to 6 bytes)
  double download_s = 0;   // Y0, Y1 device -> host (host clock): from the end of the
                           // recombination to the last coefficient unpacked into the result
  double device_s() const { return expand_s + split_s + gemm_s + recombine_s; }
};

class CudaPlaneGemm {
 public:
  // w: row-major d_out x d_in int8 matrix (copied to the device). transpose = false computes
  // W*C (C has d_in rows), transpose = true computes W^T*C (C has d_out rows). device: CUDA
  // device index. Throws FheError for empty shapes, an inner dimension of 2^17 or more, a context
  // other than P48, a missing device or any CUDA failure.
  CudaPlaneGemm(std::shared_ptr<const Context> ctx, const int8_t* w, size_t d_out, size_t d_in,
                bool transpose, int device = 0);
  ~CudaPlaneGemm();
  CudaPlaneGemm(const CudaPlaneGemm&) = delete;
  CudaPlaneGemm& operator=(const CudaPlaneGemm&) = delete;

  size_t in_dim() const { return in_; }
  size_t out_dim() const { return out_; }
  int planes() const;  // digit planes per operand (6)
  int device() const { return device_; }
  const WeightBounds& bounds() const { return bounds_; }
  const char* device_name() const;  // e.g. "NVIDIA H100 80GB HBM3"

  // The product ciphertext of a fresh ciphertext, bit-identical to PlaneGemm's. Validates the
  // input (shape, parameter set, coefficient range) and the noise budget of this product
  // (check_product) first; throws FheError.
  CiphertextMatrix multiply(const CiphertextMatrix& ct) const;
  // Same, reusing out's storage (no allocation when the shape is unchanged).
  void multiply_into(const CiphertextMatrix& ct, CiphertextMatrix& out) const;

  // As PlaneGemm::switch_reply (on the host): switches a product of this matrix in place to the
  // smallest reply modulus 2^b that decrypts exactly and returns b, or 0 when none works.
  uint32_t switch_reply(CiphertextMatrix& product) const;

  // Phase times of the last multiply on this object.
  CudaGemmTiming last_timing() const;

 private:
  struct Impl;
  std::shared_ptr<const Context> ctx_;
  size_t in_ = 0, out_ = 0;
  int device_ = 0;
  WeightBounds bounds_;
  std::unique_ptr<Impl> impl_;
};

// Expands seed rows [row0, row0 + rows) on the GPU into out (rows x n, host memory), with the
// kernel and host fallback of CudaPlaneGemm. q is a parameter so that tests can force rejections
// (any q < 2^48 gives the rows fhe::SeedExpander(seed, n, q) gives). n must be a multiple of 8.
void cuda_expand_seed_rows(const Seed& seed, size_t n, uint64_t q, uint64_t row0, size_t rows,
                           uint64_t* out, int device = 0);

// The plaintext baseline: cuBLASLt's GEMM of the same layer shape, Y = W X (d_out x t) with W
// int8 d_out x d_in and X int8 given transposed (t x d_in row-major), resident on the device.
// kInt8: s8 x s8 -> s32 (tensor cores); kFp32: f32 x f32 -> f32 (inputs converted from int8).
class CudaPlainGemm {
 public:
  enum class Type { kInt8, kFp32 };
  CudaPlainGemm(Type type, const int8_t* w, size_t d_out, size_t d_in, size_t t, int device = 0);
  ~CudaPlainGemm();
  CudaPlainGemm(const CudaPlainGemm&) = delete;
  CudaPlainGemm& operator=(const CudaPlainGemm&) = delete;

  // Uploads X^T (t x d_in row-major int8).
  void upload(const int8_t* xt);
  // Runs the GEMM `iterations` times back to back on the device and waits for the last.
  void run(int iterations = 1);
  // Downloads Y as d_out x t row-major values (int32 results, or fp32 results rounded).
  void download(int32_t* y) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace fhe
