// The RLWE secret key: a uniform ternary polynomial s, kept with its NTT form.
// Move-only; every buffer holding s is wiped on destruction.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "fhe/context.h"

namespace fhe {

class SecretKey {
 public:
  // A fresh key from the CSPRNG.
  static SecretKey generate(std::shared_ptr<const Context> ctx);
  // Key from its ternary coefficients (each -1, 0 or 1; throws FheError otherwise).
  static SecretKey from_coefficients(std::shared_ptr<const Context> ctx,
                                     const std::vector<int8_t>& s);

  // Key file: see docs/file-formats.md. Written atomically (base::write_file_atomic) with mode
  // 0600; throws FheError naming the file when it cannot be.
  void save(const std::string& path) const;
  static SecretKey load(std::shared_ptr<const Context> ctx, const std::string& path);

  ~SecretKey();
  SecretKey(SecretKey&&) noexcept = default;
  SecretKey& operator=(SecretKey&&) noexcept = default;
  SecretKey(const SecretKey&) = delete;
  SecretKey& operator=(const SecretKey&) = delete;

  const Context& context() const { return *ctx_; }
  std::shared_ptr<const Context> context_ptr() const { return ctx_; }
  const std::vector<int8_t>& coefficients() const { return s_; }
  // NTT form of s and Shoup factors for multiplying by it.
  const uint64_t* ntt() const { return s_ntt_.data(); }
  const uint64_t* ntt_shoup() const { return s_ntt_shoup_.data(); }
  // floor(s_hat * 2^52 / q), for the AVX-512 IFMA path.
  const uint64_t* ntt_shoup52() const { return s_ntt_shoup52_.data(); }

 private:
  SecretKey(std::shared_ptr<const Context> ctx, std::vector<int8_t> s);
  std::shared_ptr<const Context> ctx_;
  std::vector<int8_t> s_;
  std::vector<uint64_t> s_ntt_, s_ntt_shoup_, s_ntt_shoup52_;
};

}  // namespace fhe
