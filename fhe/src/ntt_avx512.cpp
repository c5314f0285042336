// Placeholder until the AVX-512 IFMA path lands: reports the path unavailable.
#include "ntt_simd.h"

namespace fhe::detail {
bool cpu_has_avx512ifma() { return false; }
struct NttSimd::Impl {};
NttSimd::NttSimd(const NttTables&) : impl_(nullptr) {}
NttSimd::~NttSimd() = default;
void NttSimd::forward(uint64_t*) const {}
void NttSimd::inverse(uint64_t*) const {}
}  // namespace fhe::detail
