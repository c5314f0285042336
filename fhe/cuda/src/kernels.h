// Launchers of the CUDA kernels of the digit-plane GEMM (kernels.cu). Each queues its work on
// the given stream, never synchronises, and returns the launch status (cudaGetLastError).
// Layouts (n = ring degree, P = 6 planes, source 0 = C0, source 1 = A_hat):
//   coefficient blocks  c[(b * rows + j) * n + t]                  u64 in [0, q)
//   digit matrix        d[col * kp + j], col = ((source * blocks + b) * P + p) * n + t
//                       int8, zero for j >= rows: the column-major kp x M operand of
//                       cuBLASLt's "TN" GEMM, M = 2 * blocks * P * n
//   plane sums          s[col + i * ld]                            int32, column-major M x out
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

#include "kernels_common.h"

namespace fhe::cuda_detail {

// Spare keystream words per row beyond n (as groups of 8 words): rows with more rejections fall
// back to the host.
constexpr uint32_t kSpareGroups = 4;
// Features per split tile: the digit matrix's kp must be a multiple of it.
constexpr size_t kSplitTile = 64;

// Expands seed rows row0 .. row0 + rows - 1 into out[r * n + t] (n a multiple of 8, n / 8 +
// kSpareGroups <= 1024). A row with fewer than n accepted words among its spare-padded words is
// recorded: fail_rows[atomicAdd(fail_count, 1)] = row (fail_count zeroed by the caller; fail_rows
// has room for `rows` entries); its output row is then incomplete.
cudaError_t launch_expand(const SeedKey& key, size_t n, uint64_t q, uint64_t row0, size_t rows,
                          uint64_t* out, uint32_t* fail_count, uint64_t* fail_rows, cudaStream_t s);

// Digit split of two sources of `blocks` coefficient blocks each (rows x n): source 0 to columns
// starting at 0, source 1 at blocks * P * n.
cudaError_t launch_split(const uint64_t* src0, const uint64_t* src1, size_t blocks, size_t rows,
                         size_t kp, size_t n, uint64_t q, int8_t* digits, cudaStream_t s);

// Recombination of the plane sums of both sources into y0 and y1 (blocks x out x n coefficients
// each, packed to 6 bytes: coefficient k at bytes 6k .. 6k+5; y0 and y1 2-byte aligned).
cudaError_t launch_recombine(const int32_t* sums, size_t ld, size_t blocks, size_t out, size_t n,
                             uint64_t q, uint8_t* y0, uint8_t* y1, cudaStream_t s);

// Unpacks `count` 6-byte coefficients of src (2-byte aligned) into dst.
cudaError_t launch_unpack48(const uint8_t* src, size_t count, uint64_t* dst, cudaStream_t s);

}  // namespace fhe::cuda_detail
