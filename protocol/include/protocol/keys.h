// CurveZMQ key pairs and their files.
//
// A key is 32 bytes; on disk it is its 40-character Z85 text (the ZeroMQ alphabet) on one line.
// `fedctl keygen --out PREFIX` writes PREFIX.key (the secret key, mode 0600) and PREFIX.pub (the
// public key, for the peers' allow-lists). Loaders check the length, the alphabet and that the
// text is the canonical encoding of 32 bytes, and refuse a secret key file that group or others
// can read.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include "protocol/result.h"

namespace protocol {

constexpr size_t kCurveKeyBytes = 32;
constexpr size_t kCurveKeyZ85Chars = 40;

struct PublicKey {
  std::array<uint8_t, kCurveKeyBytes> bytes{};
  std::string z85() const;
  auto operator<=>(const PublicKey&) const = default;
};

// The secret half; its bytes are wiped when it is destroyed.
class SecretKey {
 public:
  SecretKey() = default;
  explicit SecretKey(const std::array<uint8_t, kCurveKeyBytes>& bytes) : bytes_(bytes) {}
  SecretKey(const SecretKey&) = default;
  SecretKey& operator=(const SecretKey&) = default;
  ~SecretKey();

  const std::array<uint8_t, kCurveKeyBytes>& bytes() const { return bytes_; }
  std::string z85() const;

 private:
  std::array<uint8_t, kCurveKeyBytes> bytes_{};
};

struct KeyPair {
  PublicKey public_key;
  SecretKey secret_key;

  // A fresh pair from libzmq (libsodium's CSPRNG).
  static Result<KeyPair> generate();
  // The pair whose secret half is `secret` (the public half is derived).
  static Result<KeyPair> from_secret(const SecretKey& secret);
};

// Parses Z85 text (surrounding whitespace ignored). `what` names the key in error messages.
Result<PublicKey> parse_public_key(std::string_view text, std::string_view what = "public key");
Result<SecretKey> parse_secret_key(std::string_view text, std::string_view what = "secret key");

// PREFIX.pub / the public key file of a peer. A path ending in ".key" (a secret key file) is
// refused (kInvalidArgument) before it is read.
Result<PublicKey> load_public_key(const std::string& path);
// PREFIX.key: the secret key; the public half is derived from it. Refused (kInvalidArgument)
// with a message that says which file is expected: a path ending in ".pub", and a file whose
// text is the key of the PREFIX.pub next to it (a public key under a secret key's name).
Result<KeyPair> load_key_pair(const std::string& secret_key_path);

// Writes PREFIX.key (mode 0600) and PREFIX.pub. Refuses (kInvalidArgument) when either file
// exists unless `force`; errors writing are kIo. Never leaves a secret key file readable by others.
// Each file goes through base::AtomicFile, so a crash leaves the old file or the new, never a torn
// one; without `force` the placing itself refuses an existing file (link(2)).
Status write_key_pair(const KeyPair& pair, const std::string& prefix, bool force);

}  // namespace protocol
