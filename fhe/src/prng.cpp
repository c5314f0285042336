#include "fhe/prng.h"

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include <algorithm>
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
  // CTR keystream = encryption of zeros; a constant zero block avoids clearing `out` first.
  static const uint8_t kZeros[4096] = {};
  while (len > 0) {
    const int chunk = static_cast<int>(std::min(len, sizeof kZeros));
    int outl = 0;
    if (EVP_EncryptUpdate(ctx_, out, &outl, kZeros, chunk) != 1 || outl != chunk) {
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
  // 6-byte words; a few spare words cover the (probability ~2^-34 each) rejections. The buffer
  // has 2 bytes of slack so each word can be read with one 8-byte load.
  constexpr size_t kSpare = 16, kWords = 512;
  uint8_t buf[6 * kWords + 8];
  std::memset(buf + 6 * kWords, 0, 8);
  size_t produced = 0;
  while (produced < n_) {
    const size_t want = std::min<size_t>(kWords, n_ - produced + kSpare);
    ctr_.keystream(buf, 6 * want);
    const size_t room = n_ - produced;
    size_t k = 0;
    for (; k < want && produced < n_; ++k) {
      uint64_t w;
      std::memcpy(&w, buf + 6 * k, 8);
      w &= (uint64_t{1} << 48) - 1;
      out[produced] = w;
      produced += (w < q_);
    }
    (void)room;
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

namespace {

// Three samples from two 64-bit words: each sample is popcount(a) - popcount(b) for two disjoint
// eta-bit fields (fields [0,21), [21,42) of each word, and [42,63) of both words for the third).
template <typename Popcount>
inline void cbd_from_words(const uint64_t* w, size_t pairs, uint64_t mask, uint32_t eta,
                           int64_t* out, Popcount pc) {
  for (size_t k = 0; k < pairs; ++k) {
    const uint64_t a = w[2 * k], b = w[2 * k + 1];
    out[3 * k] = pc(a & mask) - pc((a >> eta) & mask);
    out[3 * k + 1] = pc(b & mask) - pc((b >> eta) & mask);
    out[3 * k + 2] = pc((a >> (2 * eta)) & mask) - pc((b >> (2 * eta)) & mask);
  }
}

__attribute__((target("popcnt"))) void cbd_hw(const uint64_t* w, size_t pairs, uint64_t mask,
                                              uint32_t eta, int64_t* out) {
  cbd_from_words(w, pairs, mask, eta, out,
                 [](uint64_t v) { return static_cast<int64_t>(__builtin_popcountll(v)); });
}

void cbd_sw(const uint64_t* w, size_t pairs, uint64_t mask, uint32_t eta, int64_t* out) {
  cbd_from_words(w, pairs, mask, eta, out,
                 [](uint64_t v) { return static_cast<int64_t>(__builtin_popcountll(v)); });
}

}  // namespace

void Csprng::centered_binomial(int64_t* out, size_t n, uint32_t eta) {
  // Three samples per 128 random bits need 3 * eta <= 63.
  if (eta == 0 || eta > 21) throw Error("centered binomial eta must be in [1, 21]");
  static const bool hw = __builtin_cpu_supports("popcnt");
  const uint64_t mask = (uint64_t{1} << eta) - 1;
  constexpr size_t kPairs = 256;
  uint64_t words[2 * kPairs];
  int64_t tmp[3 * kPairs];
  for (size_t i = 0; i < n;) {
    const size_t pairs = std::min(kPairs, (n - i + 2) / 3);
    fill(reinterpret_cast<uint8_t*>(words), pairs * 2 * sizeof(uint64_t));
    const size_t m = std::min(3 * pairs, n - i);
    int64_t* dst = (m == 3 * pairs) ? out + i : tmp;
    if (hw) {
      cbd_hw(words, pairs, mask, eta, dst);
    } else {
      cbd_sw(words, pairs, mask, eta, dst);
    }
    if (dst == tmp) std::copy_n(tmp, m, out + i);
    i += m;
  }
  secure_wipe(words, sizeof words);
  secure_wipe(tmp, sizeof tmp);
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
