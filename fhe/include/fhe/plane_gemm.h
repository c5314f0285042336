// The homomorphic product M * C with a public int8 matrix M (= W or W^T) on the CPU.
//
// Since M acts on ciphertexts by integer scalars, sum_j M[i,j] * ct_j encrypts row i of M*X for
// every token at once: the whole product is  Y0 = M*C0 mod q  and  Y1 = M*A_hat mod q  (A_hat the
// seed-expanded c1 rows, in the NTT domain). Each 48-bit operand is split into digit planes
// (6 planes of 8 bits where the CPU has VNNI or AMX, otherwise 7 planes of 7 bits, since the
// pre-VNNI u8*s8 instruction saturates at 16 bits), one oneDNN u8 x s8 -> s32 matmul runs over
// all planes of a chunk of tokens, and the planes are recombined as sum_k 2^(bits*k) P_k mod q
// while the chunk is still in cache. The weights are reordered once into oneDNN's packed layout.
//
// Thread safety: multiply() may be called from several threads at once.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "fhe/ciphertext.h"
#include "fhe/context.h"
#include "fhe/noise.h"

namespace fhe {

struct PlaneGemmOptions {
  int digit_bits = 0;       // 0: automatic (8 with VNNI/AMX, else 7); 7 or 8 to force
  size_t chunk_tokens = 0;  // tokens per oneDNN call; 0: automatic
  int threads = 0;          // 0: all OpenMP threads
  // Use the caller's row-major matrix in place instead of a packed copy: it must stay alive
  // and unchanged while this object exists. One int8 buffer can then serve both W*C and W^T*C
  // (a worker holds its weights once instead of three times); oneDNN reads the plain layout,
  // which bench_fhe measures against the packed one.
  bool borrow_weights = false;
  // The distance in int8 elements between the starts of two rows of the caller's row-major
  // matrix; 0 means d_in (a dense matrix). A larger stride makes `w` a block of columns of a
  // wider matrix: the columns [c, c + d_in) of a d_out x stride matrix are w = base + c. With
  // transpose, such a block is a range of W^T's rows, i.e. of the product's output rows (a
  // worker's ranged request, fhe_worker/matmul.h), read in place when borrowed.
  size_t weight_stride = 0;
};

class PlaneGemm {
 public:
  // w: row-major d_out x d_in int8 matrix (copied and packed, unless opts.borrow_weights).
  // transpose = false computes W*C (C has d_in rows), transpose = true computes W^T*C (C has d_out
  // rows). Throws FheError for empty shapes or an inner dimension whose int32 accumulation could
  // overflow.
  PlaneGemm(std::shared_ptr<const Context> ctx, const int8_t* w, size_t d_out, size_t d_in,
            bool transpose, PlaneGemmOptions opts = {});
  ~PlaneGemm();
  PlaneGemm(const PlaneGemm&) = delete;
  PlaneGemm& operator=(const PlaneGemm&) = delete;

  size_t in_dim() const { return in_; }
  size_t out_dim() const { return out_; }
  int digit_bits() const { return bits_; }
  int planes() const { return planes_; }
  size_t chunk_tokens() const { return chunk_; }
  const WeightBounds& bounds() const { return bounds_; }
  const char* implementation() const;  // oneDNN's implementation name
  const Context& context() const { return *ctx_; }

  // The product ciphertext of a fresh ciphertext. Checks the input first (check_fresh_input,
  // evaluator.h: shape, parameter set, coefficient range, the noise budget of this product);
  // throws FheError.
  CiphertextMatrix multiply(const CiphertextMatrix& ct) const;
  // Same, reusing out's storage (no allocation when the shape is unchanged).
  void multiply_into(const CiphertextMatrix& ct, CiphertextMatrix& out) const;

  // The product of rows [row_begin, row_begin + in_dim()) of a fresh ciphertext with any number
  // of rows (a part of a stacked input, fhe/stacked_product.h): the same as multiply_into of
  // those rows encrypted alone, except that their mask rows are expanded from the seed at their
  // place in the whole matrix. Checks the input, the row range and this part's noise budget
  // (check_fresh_input); throws FheError.
  void multiply_rows_into(const CiphertextMatrix& ct, size_t row_begin,
                          CiphertextMatrix& out) const;

  // Modulus-switches a product of this matrix (kind kProduct) in place to the smallest reply
  // modulus 2^b that still decrypts exactly (fhe::switch_reply, modswitch.h) and returns b, or
  // returns 0 and leaves the product as it is when no b <= 36 works. Costs one inverse NTT per
  // result row.
  uint32_t switch_reply(CiphertextMatrix& product) const;

  // Raw: y (out_dim x n) = M * c (in_dim x n) mod q for `count` row-blocks laid out back to back.
  void multiply_blocks(const uint64_t* c, uint64_t* y, size_t count) const;

 private:
  // The product of rows [row_begin, row_begin + in_dim()) of an input already checked.
  void multiply_checked(const CiphertextMatrix& ct, size_t row_begin, CiphertextMatrix& out) const;

  struct Impl;
  std::shared_ptr<const Context> ctx_;
  size_t in_, out_;
  int bits_, planes_;
  size_t chunk_;
  int threads_;
  WeightBounds bounds_;
  std::unique_ptr<Impl> impl_;
};

// Where the time of the products goes, for benchmarks (fhe_worker's MatmulTimings): while a
// ScopedGemmPhases is alive on a thread, the PlaneGemm products that thread calls add their
// phases here. Wall-clock nanoseconds, except recombine_cpu_ns: the recombination's CPU time
// summed over the threads (divide by `threads` for its share of gemm_ns). Two clock reads per
// phase and per recombined chunk; nothing is timed without a sink.
struct GemmPhases {
  uint64_t seed_expansion_ns = 0;  // A_hat rows expanded from the seed
  uint64_t gemm_ns = 0;            // multiply_blocks: digit split, oneDNN, recombination
  std::atomic<uint64_t> recombine_cpu_ns{0};
  int threads = 1;  // threads of the last multiply_blocks
};

class ScopedGemmPhases {
 public:
  explicit ScopedGemmPhases(GemmPhases* sink);
  ~ScopedGemmPhases();
  ScopedGemmPhases(const ScopedGemmPhases&) = delete;
  ScopedGemmPhases& operator=(const ScopedGemmPhases&) = delete;

 private:
  GemmPhases* previous_;
};

// This thread's sink, or null.
GemmPhases* current_gemm_phases();

// True when oneDNN will run u8 x s8 GEMMs without 16-bit intermediate saturation (VNNI or AMX).
bool cpu_has_int8_dot_product();

// Portable reference of the same product, for tests: scalar loops with 128-bit accumulation.
CiphertextMatrix reference_multiply(const Context& ctx, const int8_t* w, size_t d_out, size_t d_in,
                                    bool transpose, const CiphertextMatrix& ct);

}  // namespace fhe
