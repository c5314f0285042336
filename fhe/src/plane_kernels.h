// Internal: the digit split / recombination kernels of PlaneGemm (see plane_kernels.inc), in a
// portable build and an AVX-512 build with identical results.
#pragma once

#include <cstddef>
#include <cstdint>

namespace fhe::detail {

struct PlaneKernels {
  void (*split)(const uint64_t* c, size_t rows, size_t n, size_t t0, size_t ct, int bits,
                int planes, uint8_t* a);
  void (*recombine)(const int32_t* d, size_t out, size_t ct, int bits, int planes, uint64_t* y,
                    size_t n, size_t t0, uint64_t q);
};

PlaneKernels plane_kernels_portable();
PlaneKernels plane_kernels_avx512();  // only when cpu_has_avx512ifma()

}  // namespace fhe::detail
