#include "privacy/stream_key.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <vector>

#include "privacy/error.h"

namespace privacy {

Seed derive_seed(const Seed& seed, std::string_view label, std::span<const uint8_t> context) {
  std::vector<uint8_t> message(label.begin(), label.end());
  message.push_back(0);
  message.insert(message.end(), context.begin(), context.end());
  Seed out{};
  size_t len = 0;
  const unsigned char* ok = EVP_Q_mac(nullptr, "HMAC", nullptr, "SHA256", nullptr, seed.data(),
                                      seed.size(), message.data(), message.size(), out.data(),
                                      out.size(), &len);
  OPENSSL_cleanse(message.data(), message.size());
  if (ok == nullptr || len != out.size()) throw PrivacyError("OpenSSL: HMAC-SHA256 failed");
  return out;
}

std::string seed_hex(const Seed& seed) {
  static const char* digits = "0123456789abcdef";
  std::string hex;
  hex.reserve(2 * seed.size());
  for (const unsigned char b : seed) {
    hex += digits[b >> 4];
    hex += digits[b & 15];
  }
  return hex;
}

}  // namespace privacy
