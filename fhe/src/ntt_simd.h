// Internal: the vectorised NTT path. Built from ntt_avx512.cpp with AVX-512 IFMA code-generation
// flags; only ever called after cpu_has_avx512ifma() said yes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace fhe::detail {

// True when the CPU and the OS support AVX-512 F, DQ, BW, VL and IFMA (checked with cpuid and
// xgetbv, so it is safe to call on any x86-64 CPU).
bool cpu_has_avx512ifma();

// Tables it is built from: exactly those of fhe::Ntt.
struct NttTables {
  size_t n;
  uint64_t q;
  const std::vector<uint64_t>* psi_br;      // psi^bitrev(i)
  const std::vector<uint64_t>* psi_inv_br;  // psi^-bitrev(i)
  uint64_t n_inv;
};

class NttSimd {
 public:
  explicit NttSimd(const NttTables& t);
  ~NttSimd();
  // Same contract as fhe::Ntt::forward / inverse: inputs in [0, q), outputs in [0, q), identical
  // to the scalar path.
  void forward(uint64_t* a) const;
  void inverse(uint64_t* a) const;
  // Smallest n the vectorised path supports.
  static constexpr size_t kMinN = 16;

 private:
  struct Impl;
  Impl* impl_;
};

}  // namespace fhe::detail
