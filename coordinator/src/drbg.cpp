#include "coordinator/drbg.h"

#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include <charconv>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <vector>

namespace coordinator {

Drbg::Drbg(uint64_t seed) {
  const std::string label = "fedlora-coordinator-drbg-v1";
  std::vector<uint8_t> input(label.begin(), label.end());
  for (int i = 0; i < 8; ++i) input.push_back(static_cast<uint8_t>(seed >> (8 * i)));
  SHA256(input.data(), input.size(), key_.data());
}

uint64_t Drbg::next_u64() {
  uint8_t block[16] = {}, out[32] = {};
  for (int i = 0; i < 8; ++i) block[15 - i] = static_cast<uint8_t>(counter_ >> (8 * i));
  std::unique_ptr<EVP_CIPHER_CTX, decltype(&EVP_CIPHER_CTX_free)> ctx(EVP_CIPHER_CTX_new(),
                                                                      EVP_CIPHER_CTX_free);
  int len = 0;
  // One AES block of the counter: CTR mode's keystream block, computed directly.
  if (!ctx ||
      EVP_EncryptInit_ex(ctx.get(), EVP_aes_256_ecb(), nullptr, key_.data(), nullptr) != 1 ||
      EVP_CIPHER_CTX_set_padding(ctx.get(), 0) != 1 ||
      EVP_EncryptUpdate(ctx.get(), out, &len, block, sizeof block) != 1 || len != 16) {
    // OpenSSL failing on AES is an unusable installation, not bad input.
    throw std::runtime_error("OpenSSL AES-256 failed");
  }
  ++counter_;
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | out[i];
  return v;
}

uint64_t Drbg::uniform(uint64_t n) {
  if (n <= 1) return 0;
  // Reject the top partial range so every residue is equally likely.
  const uint64_t limit = UINT64_MAX - (UINT64_MAX % n + 1) % n;
  for (;;) {
    const uint64_t v = next_u64();
    if (v <= limit) return v % n;
  }
}

std::string Drbg::state() const {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string s;
  for (const uint8_t b : key_) {
    s += kHex[b >> 4];
    s += kHex[b & 15];
  }
  return s + ":" + std::to_string(counter_);
}

base::Result<Drbg> Drbg::from_state(std::string_view state) {
  auto bad = [&] {
    return base::make_error(base::Code::kInvalidArgument, "bad DRBG state '",
                            std::string(state.substr(0, 100)), "'");
  };
  if (state.size() < 66 || state[64] != ':') return bad();
  Drbg d;
  for (size_t i = 0; i < 32; ++i) {
    uint8_t byte = 0;
    for (size_t k = 0; k < 2; ++k) {
      const char c = state[2 * i + k];
      int v = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
      if (v < 0) return bad();
      byte = static_cast<uint8_t>(byte * 16 + v);
    }
    d.key_[i] = byte;
  }
  const auto rest = state.substr(65);
  auto [ptr, ec] = std::from_chars(rest.data(), rest.data() + rest.size(), d.counter_);
  if (ec != std::errc() || ptr != rest.data() + rest.size()) return bad();
  return d;
}

base::Result<std::string> new_run_id() {
  uint8_t bytes[16];
  if (RAND_bytes(bytes, sizeof bytes) != 1) {
    return base::make_error(base::Code::kInternal, "RAND_bytes failed");
  }
  constexpr char kHex[] = "0123456789abcdef";
  std::string id;
  for (const uint8_t b : bytes) {
    id.push_back(kHex[b >> 4]);
    id.push_back(kHex[b & 15]);
  }
  return id;
}

}  // namespace coordinator
