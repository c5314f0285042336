// Negacyclic number-theoretic transform over Z_q[X]/(X^n + 1).
//
// forward() maps coefficients (natural order, values in [0, q)) to evaluations at the odd powers
// of a primitive 2n-th root of unity psi, stored in bit-reversed order; inverse() undoes it.
// Pointwise products in the NTT domain are negacyclic polynomial products.
//
// Two code paths compute the same function: a portable scalar Harvey/Shoup transform (the
// reference) and, where the CPU has AVX-512 IFMA, a vectorised one. Both return fully reduced
// values, so their outputs are identical word for word. The path is chosen at construction from
// the CPU's features and can be forced for tests.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

namespace fhe {

namespace detail {
class NttSimd;
}

enum class NttPath { kScalar, kAvx512Ifma };

const char* to_string(NttPath p);

class Ntt {
 public:
  // n: power of two in [2, 65536]; q: prime below 2^50 with q = 1 mod 2n. Throws FheError otherwise.
  Ntt(size_t n, uint64_t q);
  ~Ntt();
  Ntt(const Ntt&) = delete;
  Ntt& operator=(const Ntt&) = delete;

  size_t n() const { return n_; }
  uint64_t q() const { return q_; }
  uint64_t psi() const { return psi_; }

  // In place. Input values must lie in [0, q); output values lie in [0, q).
  void forward(uint64_t* a) const;
  void inverse(uint64_t* a) const;

  // The portable reference path, whatever the active path is.
  void forward_scalar(uint64_t* a) const;
  void inverse_scalar(uint64_t* a) const;

  NttPath path() const { return path_; }
  // Selects a path; throws FheError if the CPU cannot run it.
  void set_path(NttPath p);
  static bool path_available(NttPath p, size_t n);

  // Twiddle tables: psi^bitrev(i) and psi^-bitrev(i), i < n, with Shoup factors.
  const std::vector<uint64_t>& psi_br() const { return psi_br_; }
  const std::vector<uint64_t>& psi_inv_br() const { return psi_inv_br_; }
  uint64_t n_inv() const { return n_inv_; }

 private:
  size_t n_;
  uint64_t q_;
  uint64_t psi_;
  uint64_t n_inv_, n_inv_shoup_;
  std::vector<uint64_t> psi_br_, psi_br_shoup_;
  std::vector<uint64_t> psi_inv_br_, psi_inv_br_shoup_;
  NttPath path_ = NttPath::kScalar;
  std::unique_ptr<detail::NttSimd> simd_;
};

}  // namespace fhe
