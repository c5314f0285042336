// derive_seed: HMAC-SHA256(seed, label || 0x00 || context), checked against values computed with
// Python's hmac module (hmac.new(bytes(range(32)), b"fedlora/test\x00abc", hashlib.sha256)), and
// its use: distinct contexts and labels give distinct, independent streams.
#include <gtest/gtest.h>

#include <array>
#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "privacy/random_source.h"
#include "privacy/stream_key.h"

namespace {

privacy::Seed counting_seed() {
  privacy::Seed s{};
  for (size_t i = 0; i < s.size(); ++i) s[i] = static_cast<unsigned char>(i);
  return s;
}

std::vector<uint8_t> bytes(const std::string& s) {
  return {s.begin(), s.end()};
}

TEST(StreamKey, MatchesHmacSha256KnownAnswers) {
  const privacy::Seed seed = counting_seed();
  EXPECT_EQ(privacy::seed_hex(privacy::derive_seed(seed, "fedlora/test", bytes("abc"))),
            "4c02cf0d73620a936c0bc71c6b9b89a39b5b6e42f6b94dc15b38e58d1d271215");
  EXPECT_EQ(privacy::seed_hex(privacy::derive_seed(seed, "fedlora/test", {})),
            "cc2023fdaa5cad2725ff0510420b07f11e3f5b779441e6a631f61ebf42a44f92");
}

TEST(StreamKey, EveryContextAndLabelGivesItsOwnKey) {
  const privacy::Seed seed = counting_seed();
  std::set<std::string> keys;
  for (const char* label : {"fedlora/a", "fedlora/b"}) {
    for (const char* context : {"", "round 1", "round 2", "round 1 "}) {
      keys.insert(privacy::seed_hex(privacy::derive_seed(seed, label, bytes(context))));
    }
  }
  EXPECT_EQ(keys.size(), 8u);
  // The label/context boundary is unambiguous: ("ab", "c") and ("a", "bc") differ.
  EXPECT_NE(privacy::derive_seed(seed, "ab", bytes("c")), privacy::derive_seed(seed, "a", bytes("bc")));
  // Another seed, another key.
  privacy::Seed other = seed;
  other[31] ^= 1;
  EXPECT_NE(privacy::derive_seed(seed, "fedlora/a", bytes("x")),
            privacy::derive_seed(other, "fedlora/a", bytes("x")));
}

TEST(StreamKey, DerivedKeysDriveDistinctStreams) {
  const privacy::Seed seed = counting_seed();
  privacy::RandomSource a(privacy::derive_seed(seed, "fedlora/dp", bytes("release 1")), 0);
  privacy::RandomSource a2(privacy::derive_seed(seed, "fedlora/dp", bytes("release 1")), 0);
  privacy::RandomSource b(privacy::derive_seed(seed, "fedlora/dp", bytes("release 2")), 0);
  int equal_ab = 0;
  for (int i = 0; i < 64; ++i) {
    const uint64_t x = a.next_u64();
    EXPECT_EQ(x, a2.next_u64());  // the same release replays bit for bit
    equal_ab += x == b.next_u64();
  }
  EXPECT_EQ(equal_ab, 0);
}

}  // namespace
