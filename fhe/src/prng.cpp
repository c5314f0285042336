#include "fhe/prng.h"

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include <cstring>
#include <vector>

#include "fhe/params.h"

namespace fhe {

namespace {

// counter += add, as 128-bit big-endian integers.
void add_be128(uint8_t c[16], uint64_t add) {
  unsigned carry = 0;
  for (int i = 15; i >= 0; --i) {
    const unsigned v = c[i] + static_cast<unsigned>(add & 0xff) + carry;
    c[i] = static_cast<uint8_t>(v);
    carry = v >> 8;
    add >>= 8;
  }
}

}  // namespace

void secure_wipe(void* p, size_t len) {
  if (p && len) OPENSSL_cleanse(p, len);
}

Seed random_seed() {
  Seed s;
  if (RAND_bytes(s.data(), static_cast<int>(s.size())) != 1) {
    throw Error("the system CSPRNG (RAND_bytes) failed");
  }
  return s;
}

AesCtr::AesCtr() : ctx_(EVP_CIPHER_CTX_new()) {
  if (!ctx_) throw Error("EVP_CIPHER_CTX_new failed");
}

AesCtr::~AesCtr() { EVP_CIPHER_CTX_free(ctx_); }

void AesCtr::reset(const uint8_t key[16], const uint8_t counter[16]) {
  if (EVP_EncryptInit_ex(ctx_, EVP_aes_128_ctr(), nullptr, key, counter) != 1) {
    throw Error("AES-128-CTR initialisation failed");
  }
}

void AesCtr::keystream(uint8_t* out, size_t len) {
  std::memset(out, 0, len);
  while (len > 0) {
    const int chunk = static_cast<int>(len > (1u << 30) ? (1u << 30) : len);
    int outl = 0;
    if (EVP_EncryptUpdate(ctx_, out, &outl, out, chunk) != 1 || outl != chunk) {
      throw Error("AES-128-CTR keystream failed");
    }
    out += chunk;
    len -= static_cast<size_t>(chunk);
  }
}

SeedExpander::SeedExpander(const Seed& seed, size_t n, uint64_t q) : seed_(seed), n_(n), q_(q) {}

SeedExpander::~SeedExpander() { secure_wipe(seed_.data(), seed_.size()); }

void SeedExpander::expand_row(uint64_t row, uint64_t* out) {
  uint8_t counter[16];
  std::memcpy(counter, seed_.data() + 16, 16);
  add_be128(counter, row << 32);
  ctr_.reset(seed_.data(), counter);
  // 6-byte words; a few spare words cover the (probability ~2^-34 each) rejections.
  constexpr size_t kSpare = 16;
  uint8_t buf[6 * 256];
  size_t produced = 0;
  while (produced < n_) {
    const size_t want = std::min<size_t>(256, n_ - produced + kSpare);
    ctr_.keystream(buf, 6 * want);
    for (size_t k = 0; k < want && produced < n_; ++k) {
      const uint8_t* b = buf + 6 * k;
      const uint64_t w = uint64_t{b[0]} | uint64_t{b[1]} << 8 | uint64_t{b[2]} << 16 |
                         uint64_t{b[3]} << 24 | uint64_t{b[4]} << 32 | uint64_t{b[5]} << 40;
      if (w < q_) out[produced++] = w;
    }
  }
}

Csprng::Csprng() { rekey(); }

Csprng::~Csprng() = default;

void Csprng::rekey() {
  uint8_t key[32];
  if (RAND_bytes(key, sizeof key) != 1) throw Error("the system CSPRNG (RAND_bytes) failed");
  ctr_.reset(key, key + 16);
  secure_wipe(key, sizeof key);
  used_ = 0;
}

void Csprng::fill(uint8_t* out, size_t len) {
  if (used_ + len > (uint64_t{1} << 32)) rekey();
  ctr_.keystream(out, len);
  used_ += len;
}

void Csprng::centered_binomial(int64_t* out, size_t n, uint32_t eta) {
  if (eta == 0 || eta > 32) throw Error("centered binomial eta must be in [1, 32]");
  const uint64_t mask = (eta == 32) ? 0xffffffffull : ((uint64_t{1} << eta) - 1);
  constexpr size_t kBatch = 512;
  uint64_t words[kBatch];
  for (size_t i = 0; i < n; i += kBatch) {
    const size_t m = std::min(kBatch, n - i);
    fill(reinterpret_cast<uint8_t*>(words), m * sizeof(uint64_t));
    for (size_t k = 0; k < m; ++k) {
      const uint64_t w = words[k];
      out[i + k] = static_cast<int64_t>(__builtin_popcountll(w & mask)) -
                   static_cast<int64_t>(__builtin_popcountll((w >> 32) & mask));
    }
  }
  secure_wipe(words, sizeof words);
}

void Csprng::ternary(int8_t* out, size_t n) {
  // Uniform in {0,1,2} by rejecting bytes >= 243 = 3^5, then shifted to {-1,0,1}.
  uint8_t buf[256];
  size_t produced = 0;
  while (produced < n) {
    fill(buf, sizeof buf);
    for (size_t k = 0; k < sizeof buf && produced < n; ++k) {
      if (buf[k] < 243) out[produced++] = static_cast<int8_t>(buf[k] % 3) - 1;
    }
  }
  secure_wipe(buf, sizeof buf);
}

}  // namespace fhe
