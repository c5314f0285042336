#include "fhe/ntt.h"

#include <string>

#include "fhe/modarith.h"
#include "fhe/params.h"
#include "ntt_simd.h"

namespace fhe {

namespace {

uint32_t bit_reverse(uint32_t x, int bits) {
  uint32_t r = 0;
  for (int i = 0; i < bits; ++i) {
    r = (r << 1) | (x & 1);
    x >>= 1;
  }
  return r;
}

// Smallest primitive 2n-th root of unity modulo q (deterministic choice).
uint64_t find_psi(size_t n, uint64_t q) {
  const uint64_t order = 2 * n;
  const uint64_t cofactor = (q - 1) / order;
  for (uint64_t g = 2; g < 1000000; ++g) {
    uint64_t c = pow_mod(g, cofactor, q);
    // c has order dividing 2n; it is primitive iff c^n = -1.
    if (pow_mod(c, n, q) == q - 1) {
      // Choose the smallest among the primitive roots generated this way for determinism.
      uint64_t best = c, cur = c;
      const uint64_t c2 = mul_mod(c, c, q);
      for (uint64_t k = 1; k < order; k += 2) {
        if (cur < best) best = cur;
        cur = mul_mod(cur, c2, q);
      }
      return best;
    }
  }
  throw FheError("no primitive 2n-th root of unity found");
}

}  // namespace

const char* to_string(NttPath p) {
  switch (p) {
    case NttPath::kScalar:
      return "scalar";
    case NttPath::kAvx512Ifma:
      return "avx512ifma";
  }
  return "?";
}

Ntt::Ntt(size_t n, uint64_t q) : n_(n), q_(q) {
  if (n < 2 || n > 65536 || (n & (n - 1)) != 0) {
    throw FheError("NTT size " + std::to_string(n) + " is not a power of two in [2, 65536]");
  }
  if (q >= (uint64_t{1} << 50) || !is_prime_u64(q)) {
    throw FheError("NTT modulus " + std::to_string(q) + " is not a prime below 2^50");
  }
  if ((q - 1) % (2 * n) != 0) {
    throw FheError("NTT modulus " + std::to_string(q) + " is not 1 mod 2n = " + std::to_string(2 * n));
  }
  psi_ = find_psi(n, q);
  const uint64_t psi_inv = pow_mod(psi_, 2 * n - 1, q);
  int bits = 0;
  while ((size_t{1} << bits) < n) ++bits;
  psi_br_.resize(n);
  psi_inv_br_.resize(n);
  psi_br_shoup_.resize(n);
  psi_inv_br_shoup_.resize(n);
  uint64_t p = 1, pi = 1;
  for (size_t i = 0; i < n; ++i) {
    const uint32_t r = bit_reverse(static_cast<uint32_t>(i), bits);
    psi_br_[r] = p;
    psi_inv_br_[r] = pi;
    p = mul_mod(p, psi_, q);
    pi = mul_mod(pi, psi_inv, q);
  }
  for (size_t i = 0; i < n; ++i) {
    psi_br_shoup_[i] = shoup(psi_br_[i], q);
    psi_inv_br_shoup_[i] = shoup(psi_inv_br_[i], q);
  }
  n_inv_ = pow_mod(n, q - 2, q);
  n_inv_shoup_ = shoup(n_inv_, q);
  if (path_available(NttPath::kAvx512Ifma, n)) set_path(NttPath::kAvx512Ifma);
}

Ntt::~Ntt() = default;

bool Ntt::path_available(NttPath p, size_t n) {
  switch (p) {
    case NttPath::kScalar:
      return true;
    case NttPath::kAvx512Ifma:
      return n >= detail::NttSimd::kMinN && detail::cpu_has_avx512ifma();
  }
  return false;
}

void Ntt::set_path(NttPath p) {
  if (!path_available(p, n_)) {
    throw FheError(std::string("NTT path ") + to_string(p) + " is not available on this CPU/size");
  }
  if (p == NttPath::kAvx512Ifma && !simd_) {
    simd_ = std::make_unique<detail::NttSimd>(
        detail::NttTables{n_, q_, &psi_br_, &psi_inv_br_, n_inv_});
  }
  path_ = p;
}

void Ntt::forward(uint64_t* a) const {
  if (path_ == NttPath::kAvx512Ifma) {
    simd_->forward(a);
  } else {
    forward_scalar(a);
  }
}

void Ntt::inverse(uint64_t* a) const {
  if (path_ == NttPath::kAvx512Ifma) {
    simd_->inverse(a);
  } else {
    inverse_scalar(a);
  }
}

// Cooley-Tukey, bit-reversed twiddles, Harvey's lazy butterflies: values stay in [0, 4q).
void Ntt::forward_scalar(uint64_t* a) const {
  const uint64_t q = q_, two_q = 2 * q_;
  size_t t = n_;
  for (size_t m = 1; m < n_; m <<= 1) {
    t >>= 1;
    for (size_t i = 0; i < m; ++i) {
      const uint64_t w = psi_br_[m + i], wp = psi_br_shoup_[m + i];
      uint64_t* x = a + 2 * i * t;
      uint64_t* y = x + t;
      for (size_t j = 0; j < t; ++j) {
        uint64_t u = x[j];
        if (u >= two_q) u -= two_q;
        const uint64_t v = mul_shoup_lazy(y[j], w, wp, q);
        x[j] = u + v;
        y[j] = u + two_q - v;
      }
    }
  }
  for (size_t j = 0; j < n_; ++j) {
    uint64_t v = a[j];
    if (v >= two_q) v -= two_q;
    if (v >= q) v -= q;
    a[j] = v;
  }
}

// Gentleman-Sande with inverse twiddles; values stay in [0, 2q); final scaling by n^-1.
void Ntt::inverse_scalar(uint64_t* a) const {
  const uint64_t q = q_, two_q = 2 * q_;
  size_t t = 1;
  for (size_t m = n_ >> 1; m >= 1; m >>= 1) {
    for (size_t i = 0; i < m; ++i) {
      const uint64_t w = psi_inv_br_[m + i], wp = psi_inv_br_shoup_[m + i];
      uint64_t* x = a + 2 * i * t;
      uint64_t* y = x + t;
      for (size_t j = 0; j < t; ++j) {
        const uint64_t u = x[j], v = y[j];
        uint64_t s = u + v;
        if (s >= two_q) s -= two_q;
        x[j] = s;
        y[j] = mul_shoup_lazy(u + two_q - v, w, wp, q);
      }
    }
    t <<= 1;
  }
  for (size_t j = 0; j < n_; ++j) a[j] = mul_shoup(a[j], n_inv_, n_inv_shoup_, q);
}

}  // namespace fhe
