#include "fhe/prng.h"

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "fhe/params.h"
#include "ntt_simd.h"
#include "simd_ops.h"

#include <cpuid.h>

namespace fhe {

namespace detail {

bool cpu_has_avx512_vbmi_popcnt() {
  static const bool ok = [] {
    if (!cpu_has_avx512ifma()) return false;  // also checks the OS saves AVX-512 state
    unsigned a = 0, b = 0, c = 0, d = 0;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return false;
    return (c & (1u << 1)) != 0 && (c & (1u << 14)) != 0;  // AVX512_VBMI, AVX512_VPOPCNTDQ
  }();
  return ok;
}

}  // namespace detail

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
    throw FheError("the system CSPRNG (RAND_bytes) failed");
  }
  return s;
}

AesCtr::AesCtr() : ctx_(EVP_CIPHER_CTX_new()) {
  if (!ctx_) throw FheError("EVP_CIPHER_CTX_new failed");
}

AesCtr::~AesCtr() {
  EVP_CIPHER_CTX_free(ctx_);
}

void AesCtr::reset(const uint8_t key[16], const uint8_t counter[16]) {
  if (EVP_EncryptInit_ex(ctx_, EVP_aes_128_ctr(), nullptr, key, counter) != 1) {
    throw FheError("AES-128-CTR initialisation failed");
  }
}

void AesCtr::keystream(uint8_t* out, size_t len) {
  // CTR keystream = encryption of zeros; a constant zero block avoids clearing `out` first.
  static const uint8_t kZeros[4096] = {};
  while (len > 0) {
    const int chunk = static_cast<int>(std::min(len, sizeof kZeros));
    int outl = 0;
    if (EVP_EncryptUpdate(ctx_, out, &outl, kZeros, chunk) != 1 || outl != chunk) {
      throw FheError("AES-128-CTR keystream failed");
    }
    out += chunk;
    len -= static_cast<size_t>(chunk);
  }
}

SeedExpander::SeedExpander(const Seed& seed, size_t n, uint64_t q) : seed_(seed), n_(n), q_(q) {}

SeedExpander::~SeedExpander() {
  secure_wipe(seed_.data(), seed_.size());
}

void SeedExpander::expand_row(uint64_t row, uint64_t* out) {
  uint8_t counter[16];
  std::memcpy(counter, seed_.data() + 16, 16);
  add_be128(counter, row << 32);
  ctr_.reset(seed_.data(), counter);
  // Fast path: read n words from 6n keystream bytes (with 2 bytes of slack, so each word is one
  // 8-byte load) and check afterwards that none was rejected; a rejection (probability about
  // n * 2^-34 per row) falls back to the word-by-word loop below from the same stream start.
  {
    const size_t bytes = 6 * n_;
    if (buf_.size() < bytes + 16) buf_.assign(bytes + 16, 0);
    ctr_.keystream(buf_.data(), bytes);
    const uint8_t* b = buf_.data();
    uint64_t rejected = 0;
    if (detail::cpu_has_avx512_vbmi_popcnt()) {
      rejected = detail::unpack48_avx512(b, n_, out, q_);
    } else {
      for (size_t k = 0; k < n_; ++k) {
        uint64_t w;
        std::memcpy(&w, b + 6 * k, 8);
        w &= (uint64_t{1} << 48) - 1;
        out[k] = w;
        rejected |= (w >= q_);
      }
    }
    if (!rejected) return;
    ctr_.reset(seed_.data(), counter);
  }
  // 6-byte words; a few spare words cover the rejections.
  constexpr size_t kSpare = 16, kWords = 512;
  uint8_t buf[6 * kWords + 8];
  std::memset(buf + 6 * kWords, 0, 8);
  size_t produced = 0;
  while (produced < n_) {
    const size_t want = std::min<size_t>(kWords, n_ - produced + kSpare);
    ctr_.keystream(buf, 6 * want);
    for (size_t k = 0; k < want && produced < n_; ++k) {
      uint64_t w;
      std::memcpy(&w, buf + 6 * k, 8);
      w &= (uint64_t{1} << 48) - 1;
      out[produced] = w;
      produced += (w < q_);
    }
  }
}

Csprng::Csprng() {
  rekey();
}

Csprng::~Csprng() = default;

void Csprng::rekey() {
  uint8_t key[32];
  if (RAND_bytes(key, sizeof key) != 1) throw FheError("the system CSPRNG (RAND_bytes) failed");
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

// 24 samples per block of 16 random words (the mapping of simd_ops.h, shared with the AVX-512
// kernel): fields [0, eta) and [eta, 2 eta) of each word give one sample, and field
// [2 eta, 3 eta) of words i and 8 + i gives a third.
template <typename Popcount>
inline void cbd_blocks(const uint64_t* w, size_t blocks, uint32_t eta, int64_t* out, Popcount pc) {
  const uint64_t m = (uint64_t{1} << eta) - 1;
  for (size_t k = 0; k < blocks; ++k) {
    const uint64_t* a = w + 16 * k;
    int64_t* o = out + 24 * k;
    for (int i = 0; i < 8; ++i) {
      o[i] = pc(a[i] & m) - pc((a[i] >> eta) & m);
      o[8 + i] = pc(a[8 + i] & m) - pc((a[8 + i] >> eta) & m);
      o[16 + i] = pc((a[i] >> (2 * eta)) & m) - pc((a[8 + i] >> (2 * eta)) & m);
    }
  }
}

__attribute__((target("popcnt"))) void cbd_hw(const uint64_t* w, size_t blocks, uint32_t eta,
                                              int64_t* out) {
  cbd_blocks(w, blocks, eta, out,
             [](uint64_t v) { return static_cast<int64_t>(__builtin_popcountll(v)); });
}

void cbd_sw(const uint64_t* w, size_t blocks, uint32_t eta, int64_t* out) {
  cbd_blocks(w, blocks, eta, out,
             [](uint64_t v) { return static_cast<int64_t>(__builtin_popcountll(v)); });
}

}  // namespace

void Csprng::centered_binomial(int64_t* out, size_t n, uint32_t eta) {
  // Three samples per 128 random bits need 3 * eta <= 64.
  if (eta == 0 || eta > 21) throw FheError("centered binomial eta must be in [1, 21]");
  static const bool hw = __builtin_cpu_supports("popcnt");
  const bool simd = detail::cpu_has_avx512_vbmi_popcnt();
  constexpr size_t kBlocks = 32;  // 512 words, 768 samples per batch
  uint64_t words[16 * kBlocks];
  int64_t tmp[24];
  for (size_t i = 0; i < n;) {
    const size_t full = std::min(kBlocks, (n - i) / 24);
    const size_t blocks = full ? full : 1;
    fill(reinterpret_cast<uint8_t*>(words), blocks * 16 * sizeof(uint64_t));
    int64_t* dst = full ? out + i : tmp;
    if (simd) {
      detail::cbd_blocks_avx512(words, blocks, eta, dst);
    } else if (hw) {
      cbd_hw(words, blocks, eta, dst);
    } else {
      cbd_sw(words, blocks, eta, dst);
    }
    const size_t m = full ? 24 * full : n - i;
    if (!full) {
      std::copy_n(tmp, m, out + i);
      secure_wipe(tmp, sizeof tmp);
    }
    secure_wipe(words, blocks * 16 * sizeof(uint64_t));
    i += m;
  }
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
