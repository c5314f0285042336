// Cryptographically secure random bits for DP noise and DP sampling, from the operating system
// or, for replayable runs, from a seed.
//
//   privacy::RandomSource os;                                   // OpenSSL RAND_bytes
//   privacy::RandomSource replay(privacy::parse_seed_hex(hex),  // AES-256-CTR DRBG
//                                /*stream=*/1);
//   uint64_t w = replay.next_u64();
//
// Two modes:
// - OS (the default): every byte comes from OpenSSL's RAND_bytes, i.e. the operating system's
//   CSPRNG through OpenSSL's DRBG. Unpredictable and not reproducible: use it for real runs.
// - Seeded: the keystream of AES-256 in counter mode (OpenSSL EVP) with the 32-byte seed as the
//   key and the 16-byte initial counter block [stream as 8 bytes big-endian | 8 zero bytes],
//   i.e. byte i of the output is byte i of AES-256-CTR(key = seed, iv = that block) applied to
//   zeros. Distinct streams of one seed are distinct counter ranges (2^68 bytes apart), so they
//   never overlap. This is still a CSPRNG (nobody without the seed can predict it), and it lets
//   a whole federation be replayed bit for bit from fixed seeds: the same (seed, stream) gives
//   the same bytes on every platform. The seed is then the secret: anyone holding it can remove
//   the DP noise, so keep it with the participant's key material, never in logs.
//
// A RandomSource is a uniform random bit generator of 64-bit words (std::uniform_random_bit_
// generator), so it plugs into model::UrbgRandomBits. Words are read little-endian from the
// byte stream. Buffered output is wiped (OPENSSL_cleanse) on destruction. Not thread-safe: one
// source per thread. Movable, not copyable (a copy would repeat the stream).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <memory>
#include <span>
#include <string_view>

namespace privacy {

// The key of a seeded RandomSource.
using Seed = std::array<unsigned char, 32>;

// Parses exactly 64 hex digits (either case) into a Seed; throws PrivacyError otherwise.
Seed parse_seed_hex(std::string_view hex);

class RandomSource {
 public:
  using result_type = uint64_t;
  static constexpr result_type min() { return 0; }
  static constexpr result_type max() { return std::numeric_limits<result_type>::max(); }

  // OS mode: RAND_bytes.
  RandomSource();
  // Seeded mode: the AES-256-CTR keystream of (seed, stream) described above. Throws PrivacyError if
  // OpenSSL cannot set up the cipher.
  RandomSource(const Seed& seed, uint64_t stream);

  RandomSource(RandomSource&&) noexcept;
  RandomSource& operator=(RandomSource&&) noexcept;
  RandomSource(const RandomSource&) = delete;
  RandomSource& operator=(const RandomSource&) = delete;
  ~RandomSource();

  bool seeded() const { return cipher_ != nullptr; }

  // Fills `out` with the next bytes of the stream. Throws PrivacyError if OpenSSL fails.
  void fill(std::span<unsigned char> out);
  // The next 8 bytes as a little-endian word.
  uint64_t next_u64();
  result_type operator()() { return next_u64(); }

 private:
  struct Cipher;  // the EVP context of the seeded mode
  void refill();

  std::unique_ptr<Cipher> cipher_;  // null in OS mode
  std::array<unsigned char, 1024> buffer_{};
  size_t used_ = buffer_.size();  // bytes of buffer_ already handed out
};

}  // namespace privacy
