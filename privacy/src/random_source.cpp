#include "privacy/random_source.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <algorithm>
#include <string>
#include <utility>

#include "privacy/error.h"

namespace privacy {

struct RandomSource::Cipher {
  EVP_CIPHER_CTX* ctx = nullptr;
  ~Cipher() { EVP_CIPHER_CTX_free(ctx); }  // also wipes the expanded key
};

namespace {

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

Seed parse_seed_hex(std::string_view hex) {
  Seed seed{};
  if (hex.size() != 2 * seed.size()) {
    throw PrivacyError("a seed is " + std::to_string(2 * seed.size()) + " hex digits (32 bytes), got " +
                std::to_string(hex.size()) + " characters");
  }
  for (size_t i = 0; i < seed.size(); ++i) {
    const int hi = hex_value(hex[2 * i]);
    const int lo = hex_value(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) {
      throw PrivacyError("a seed is hex digits only, found '" +
                  std::string(1, hi < 0 ? hex[2 * i] : hex[2 * i + 1]) + "'");
    }
    seed[i] = static_cast<unsigned char>(hi * 16 + lo);
  }
  return seed;
}

RandomSource::RandomSource() = default;

RandomSource::RandomSource(const Seed& seed, uint64_t stream)
    : cipher_(std::make_unique<Cipher>()) {
  cipher_->ctx = EVP_CIPHER_CTX_new();
  if (cipher_->ctx == nullptr) throw PrivacyError("OpenSSL: cannot allocate a cipher context");
  unsigned char iv[16] = {};
  for (int i = 0; i < 8; ++i) iv[i] = static_cast<unsigned char>(stream >> (56 - 8 * i));
  if (EVP_EncryptInit_ex(cipher_->ctx, EVP_aes_256_ctr(), nullptr, seed.data(), iv) != 1) {
    throw PrivacyError("OpenSSL: cannot set up AES-256-CTR");
  }
}

RandomSource::RandomSource(RandomSource&& other) noexcept
    : cipher_(std::move(other.cipher_)), buffer_(other.buffer_), used_(other.used_) {
  OPENSSL_cleanse(other.buffer_.data(), other.buffer_.size());
  other.used_ = other.buffer_.size();
}

RandomSource& RandomSource::operator=(RandomSource&& other) noexcept {
  if (this != &other) {
    cipher_ = std::move(other.cipher_);
    buffer_ = other.buffer_;
    used_ = other.used_;
    OPENSSL_cleanse(other.buffer_.data(), other.buffer_.size());
    other.used_ = other.buffer_.size();
  }
  return *this;
}

RandomSource::~RandomSource() {
  OPENSSL_cleanse(buffer_.data(), buffer_.size());
}

void RandomSource::refill() {
  const int n = static_cast<int>(buffer_.size());
  if (cipher_) {
    std::fill(buffer_.begin(), buffer_.end(), 0);
    int written = 0;
    if (EVP_EncryptUpdate(cipher_->ctx, buffer_.data(), &written, buffer_.data(), n) != 1 ||
        written != n) {
      throw PrivacyError("OpenSSL: AES-256-CTR failed");
    }
  } else if (RAND_bytes(buffer_.data(), n) != 1) {
    throw PrivacyError("the system CSPRNG (RAND_bytes) failed");
  }
  used_ = 0;
}

void RandomSource::fill(std::span<unsigned char> out) {
  size_t done = 0;
  while (done < out.size()) {
    if (used_ == buffer_.size()) refill();
    const size_t n = std::min(out.size() - done, buffer_.size() - used_);
    std::copy_n(buffer_.begin() + static_cast<std::ptrdiff_t>(used_), n,
                out.begin() + static_cast<std::ptrdiff_t>(done));
    OPENSSL_cleanse(buffer_.data() + used_, n);
    used_ += n;
    done += n;
  }
}

uint64_t RandomSource::next_u64() {
  unsigned char b[8];
  fill(b);
  uint64_t w = 0;
  for (int i = 7; i >= 0; --i) w = (w << 8) | b[i];
  OPENSSL_cleanse(b, sizeof b);
  return w;
}

}  // namespace privacy
