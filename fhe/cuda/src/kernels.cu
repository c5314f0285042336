// CUDA kernels of the digit-plane GEMM: seed expansion, digit split and recombination.
#include "kernels.h"

namespace fhe::cuda_detail {

namespace {

constexpr int kSplitTokens = 32;    // tokens per split tile
constexpr int kSplitThreads = 256;  // threads per split tile
constexpr int kRecombineThreads = 256;

// Exclusive prefix sum of v over the block (blockDim.x a multiple of 32); total gets the sum.
__device__ uint32_t block_exclusive_scan(uint32_t v, uint32_t* warp_sums, uint32_t& total) {
  const unsigned lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const unsigned warps = blockDim.x >> 5;
  uint32_t x = v;
#pragma unroll
  for (int o = 1; o < 32; o <<= 1) {
    const uint32_t y = __shfl_up_sync(0xffffffffu, x, o);
    if (lane >= static_cast<unsigned>(o)) x += y;
  }
  if (lane == 31) warp_sums[warp] = x;
  __syncthreads();
  if (warp == 0) {
    uint32_t w = lane < warps ? warp_sums[lane] : 0;
#pragma unroll
    for (int o = 1; o < 32; o <<= 1) {
      const uint32_t y = __shfl_up_sync(0xffffffffu, w, o);
      if (lane >= static_cast<unsigned>(o)) w += y;
    }
    warp_sums[lane] = w;  // inclusive sums of the warps
  }
  __syncthreads();
  total = warp_sums[warps - 1];
  return (warp ? warp_sums[warp - 1] : 0) + x - v;
}

// One block per row; thread g produces keystream words 8g .. 8g+7.
__global__ void expand_kernel(SeedKey key, uint32_t n, uint32_t groups, uint64_t q, uint64_t row0,
                              uint64_t* out, uint32_t* fail_count, uint64_t* fail_rows) {
  __shared__ uint32_t te0[256];
  __shared__ uint8_t sbox[256];
  __shared__ uint32_t rk[44];
  __shared__ uint32_t warp_sums[32];
  for (unsigned i = threadIdx.x; i < 256; i += blockDim.x) {
    const uint8_t s = aes_sbox(static_cast<uint8_t>(i));
    sbox[i] = s;
    te0[i] = aes_te0(s);
  }
  for (unsigned i = threadIdx.x; i < 44; i += blockDim.x) rk[i] = key.rk[i];
  __syncthreads();
  const uint64_t row = row0 + blockIdx.x;
  const uint32_t g = threadIdx.x;
  uint64_t w[8];
  uint32_t count = 0;
  if (g < groups) {
    keystream_words8(rk, te0, sbox, key.base_hi, key.base_lo, row, g, w);
#pragma unroll
    for (int m = 0; m < 8; ++m) count += w[m] < q ? 1u : 0u;
  }
  uint32_t total = 0;
  uint32_t pos = block_exclusive_scan(count, warp_sums, total);
  uint64_t* dst = out + static_cast<size_t>(blockIdx.x) * n;
  if (g < groups) {
#pragma unroll
    for (int m = 0; m < 8; ++m) {
      if (w[m] < q) {
        if (pos < n) dst[pos] = w[m];
        ++pos;
      }
    }
  }
  if (threadIdx.x == 0 && total < n) fail_rows[atomicAdd(fail_count, 1u)] = row;
}

// Tile: kSplitTile features x kSplitTokens tokens of one block of one source.
__global__ void split_kernel(const uint64_t* src0, const uint64_t* src1, uint32_t blocks,
                             uint32_t rows, uint32_t kp, uint32_t n, uint64_t q, int8_t* digits) {
  __shared__ uint64_t tile[kSplitTile][kSplitTokens + 1];
  const uint32_t t0 = blockIdx.x * kSplitTokens, j0 = blockIdx.y * kSplitTile;
  const uint32_t source = blockIdx.z / blocks, b = blockIdx.z % blocks;
  const uint64_t* c = (source ? src1 : src0) + static_cast<size_t>(b) * rows * n;
  {
    const uint32_t tt = threadIdx.x % kSplitTokens;
    for (uint32_t jj = threadIdx.x / kSplitTokens; jj < kSplitTile;
         jj += kSplitThreads / kSplitTokens) {
      const uint32_t j = j0 + jj;
      const uint64_t v = j < rows ? c[static_cast<size_t>(j) * n + t0 + tt] : 0;
      tile[jj][tt] = offset_digits(v, q);  // v = 0 gives zero digits
    }
  }
  __syncthreads();
  // Writes: for each plane and token, kSplitTile digit bytes as 32-bit words (4 features).
  constexpr uint32_t kWords = kSplitTile / 4;
  const size_t col0 = (static_cast<size_t>(source) * blocks + b) * kPlanes * n;
  for (uint32_t idx = threadIdx.x; idx < kPlanes * kSplitTokens * kWords; idx += kSplitThreads) {
    const uint32_t f4 = idx % kWords, tt = (idx / kWords) % kSplitTokens;
    const int p = static_cast<int>(idx / (kWords * kSplitTokens));
    uint32_t word = 0;
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      word |= static_cast<uint32_t>(static_cast<uint8_t>(digit(tile[4 * f4 + e][tt], p)))
              << (8 * e);
    }
    const size_t col = col0 + static_cast<size_t>(p) * n + t0 + tt;
    *reinterpret_cast<uint32_t*>(digits + col * kp + j0 + 4 * f4) = word;
  }
}

// 48-bit values as three 16-bit words (the packed arrays are 2-byte aligned).
__device__ __forceinline__ void store48_aligned(uint64_t v, uint8_t* p) {
  uint16_t* w = reinterpret_cast<uint16_t*>(p);
  w[0] = static_cast<uint16_t>(v);
  w[1] = static_cast<uint16_t>(v >> 16);
  w[2] = static_cast<uint16_t>(v >> 32);
}

__device__ __forceinline__ uint64_t load48_aligned(const uint8_t* p) {
  const uint16_t* w = reinterpret_cast<const uint16_t*>(p);
  return uint64_t{w[0]} | (uint64_t{w[1]} << 16) | (uint64_t{w[2]} << 32);
}

__global__ void unpack48_kernel(const uint8_t* src, size_t count, uint64_t* dst) {
  const size_t k = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (k < count) dst[k] = load48_aligned(src + kPackedBytes * k);
}

// Thread per output coefficient (source, block, row i, token t).
__global__ void recombine_kernel(const int32_t* sums, size_t ld, uint32_t blocks, uint32_t out,
                                 uint32_t n, uint64_t q, uint8_t* y0, uint8_t* y1) {
  const uint32_t chunks = n / kRecombineThreads;
  const uint32_t i = blockIdx.x / chunks;
  const uint32_t t = (blockIdx.x % chunks) * kRecombineThreads + threadIdx.x;
  const uint32_t source = blockIdx.z / blocks, b = blockIdx.z % blocks;
  const int32_t* s = sums + static_cast<size_t>(i) * ld +
                     (static_cast<size_t>(source) * blocks + b) * kPlanes * n + t;
  int32_t p[kPlanes];
#pragma unroll
  for (int k = 0; k < kPlanes; ++k) p[k] = s[static_cast<size_t>(k) * n];
  uint8_t* y = source ? y1 : y0;
  store48_aligned(recombine(p, q), y + kPackedBytes * ((static_cast<size_t>(b) * out + i) * n + t));
}

}  // namespace

cudaError_t launch_expand(const SeedKey& key, size_t n, uint64_t q, uint64_t row0, size_t rows,
                          uint64_t* out, uint32_t* fail_count, uint64_t* fail_rows,
                          cudaStream_t s) {
  if (rows == 0) return cudaSuccess;
  const uint32_t groups = static_cast<uint32_t>(n / 8 + kSpareGroups);
  const uint32_t threads = (groups + 31) / 32 * 32;
  // Rows go in grid x (up to 2^31 - 1).
  expand_kernel<<<static_cast<unsigned>(rows), threads, 0, s>>>(
      key, static_cast<uint32_t>(n), groups, q, row0, out, fail_count, fail_rows);
  return cudaGetLastError();
}

cudaError_t launch_split(const uint64_t* src0, const uint64_t* src1, size_t blocks, size_t rows,
                         size_t kp, size_t n, uint64_t q, int8_t* digits, cudaStream_t s) {
  const dim3 grid(static_cast<unsigned>(n / kSplitTokens), static_cast<unsigned>(kp / kSplitTile),
                  static_cast<unsigned>(2 * blocks));
  split_kernel<<<grid, kSplitThreads, 0, s>>>(
      src0, src1, static_cast<uint32_t>(blocks), static_cast<uint32_t>(rows),
      static_cast<uint32_t>(kp), static_cast<uint32_t>(n), q, digits);
  return cudaGetLastError();
}

cudaError_t launch_recombine(const int32_t* sums, size_t ld, size_t blocks, size_t out, size_t n,
                             uint64_t q, uint8_t* y0, uint8_t* y1, cudaStream_t s) {
  const dim3 grid(static_cast<unsigned>(out * (n / kRecombineThreads)), 1,
                  static_cast<unsigned>(2 * blocks));
  recombine_kernel<<<grid, kRecombineThreads, 0, s>>>(sums, ld, static_cast<uint32_t>(blocks),
                                                      static_cast<uint32_t>(out),
                                                      static_cast<uint32_t>(n), q, y0, y1);
  return cudaGetLastError();
}

cudaError_t launch_unpack48(const uint8_t* src, size_t count, uint64_t* dst, cudaStream_t s) {
  if (count == 0) return cudaSuccess;
  constexpr unsigned kThreads = 256;
  unpack48_kernel<<<static_cast<unsigned>((count + kThreads - 1) / kThreads), kThreads, 0, s>>>(
      src, count, dst);
  return cudaGetLastError();
}

}  // namespace fhe::cuda_detail
