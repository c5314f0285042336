// Randomness of the scheme.
//
// * The public polynomial `a` of each ciphertext is never sent. It is expanded from a 32-byte
//   seed with AES-128-CTR, directly in the NTT domain, by rejection sampling 48-bit words below q:
//     key     = seed[0..16)
//     counter = seed[16..32) read as a 128-bit big-endian integer, plus row * 2^32
//   Row r (one ciphertext) reads the keystream from its own counter block in 6-byte
//   little-endian words and keeps every word w with w < q, until n values are accepted. A row
//   never consumes 2^32 blocks, so rows never share keystream. Anyone holding the seed (the
//   worker) expands the same rows; a fresh random seed is drawn for every encrypted batch.
// * Secrets and errors come from Csprng: AES-128-CTR keyed by 16 bytes of OpenSSL's RAND_bytes
//   (the operating system's CSPRNG through OpenSSL's DRBG), rekeyed every 2^32 bytes.
#pragma once

#include <openssl/evp.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace fhe {

using Seed = std::array<uint8_t, 32>;

// A seed from the CSPRNG.
Seed random_seed();

// Raw AES-128-CTR keystream (a thin RAII wrapper over OpenSSL's EVP interface).
class AesCtr {
 public:
  AesCtr();
  ~AesCtr();
  AesCtr(const AesCtr&) = delete;
  AesCtr& operator=(const AesCtr&) = delete;
  // Restarts the stream at the given key and 16-byte big-endian counter block.
  void reset(const uint8_t key[16], const uint8_t counter[16]);
  // Appends the next len keystream bytes to out.
  void keystream(uint8_t* out, size_t len);

 private:
  EVP_CIPHER_CTX* ctx_;
};

// Expands rows of `a` (NTT domain) from a seed. Not thread-safe: one expander per thread.
class SeedExpander {
 public:
  SeedExpander(const Seed& seed, size_t n, uint64_t q);
  ~SeedExpander();
  SeedExpander(const SeedExpander&) = delete;
  SeedExpander& operator=(const SeedExpander&) = delete;
  // Writes the n NTT-domain coefficients of row `row` to out, each in [0, q).
  void expand_row(uint64_t row, uint64_t* out);

 private:
  Seed seed_;
  size_t n_;
  uint64_t q_;
  AesCtr ctr_;
  std::vector<uint8_t> buf_;
};

// Cryptographically secure stream for secrets and errors. Not thread-safe: one per thread.
class Csprng {
 public:
  Csprng();
  ~Csprng();
  Csprng(const Csprng&) = delete;
  Csprng& operator=(const Csprng&) = delete;
  void fill(uint8_t* out, size_t len);
  // n samples of the centered binomial distribution with parameter eta <= 21, as int64.
  void centered_binomial(int64_t* out, size_t n, uint32_t eta);
  // n uniform ternary values in {-1, 0, 1}.
  void ternary(int8_t* out, size_t n);

 private:
  void rekey();
  AesCtr ctr_;
  uint64_t used_ = 0;
};

// Wipes memory that held secrets (not optimised away).
void secure_wipe(void* p, size_t len);

}  // namespace fhe
