// The coordinator's source of selection randomness: a deterministic AES-256-CTR generator
// (OpenSSL EVP), seeded from a 64-bit run seed, whose state (key, block counter) is a short
// string that the checkpoint stores, so a resumed run draws exactly what an uninterrupted one
// would. Never std::mt19937: selection must not be predictable from a few outputs.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include "base/result.h"
#include "protocol/result.h"

namespace coordinator {

class Drbg {
 public:
  // key = SHA-256("fedlora-coordinator-drbg-v1" || seed as 8 little-endian bytes), counter 0.
  explicit Drbg(uint64_t seed);

  // 64 bits: the first 8 bytes (little-endian) of AES-256(key, counter as a 128-bit big-endian
  // block); the counter then advances by one.
  uint64_t next_u64();
  // Uniform in [0, n) by rejection (n >= 1).
  uint64_t uniform(uint64_t n);

  // "<64 hex digits of key>:<counter>"; from_state() parses it back (kInvalidArgument if bad).
  std::string state() const;
  static base::Result<Drbg> from_state(std::string_view state);

  bool operator==(const Drbg&) const = default;

 private:
  Drbg() = default;
  std::array<uint8_t, 32> key_{};
  uint64_t counter_ = 0;
};

// A fresh run id: 16 bytes from OpenSSL's CSPRNG (RAND_bytes) as 32 lowercase hex characters
// (protocol::coord::is_run_id). kInternal when the CSPRNG fails.
base::Result<std::string> new_run_id();

}  // namespace coordinator
