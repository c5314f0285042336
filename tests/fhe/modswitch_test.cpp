// Modulus-switched replies: smaller on the wire and still exact.
#include "fhe/modswitch.h"

#include <gtest/gtest.h>

#include "fhe/encryptor.h"
#include "fhe/plane_gemm.h"
#include "fhe/serialize.h"
#include "test_util.h"

namespace {

using fhe_test::ctx;
using fhe_test::plain_product;
using fhe_test::random_int8;

TEST(PackCoefficients, RoundTripsEveryWidth) {
  std::vector<uint64_t> v(1001);
  for (uint32_t bits : {12u, 13u, 31u, 33u, 35u, 36u, 48u}) {
    for (size_t i = 0; i < v.size(); ++i) {
      v[i] = (i * 0x9E3779B97F4A7C15ull + bits) & ((uint64_t{1} << bits) - 1);
    }
    v[0] = (uint64_t{1} << bits) - 1;  // all ones
    std::vector<uint8_t> packed((v.size() * bits + 7) / 8 + 1, 0xAB);
    fhe::pack_coefficients(v.data(), v.size(), bits, packed.data());
    EXPECT_EQ(packed.back(), 0xAB) << "wrote past the end, bits=" << bits;
    std::vector<uint64_t> back(v.size());
    fhe::unpack_coefficients(packed.data(), v.size(), bits, back.data());
    EXPECT_EQ(back, v) << "bits=" << bits;
  }
}

// Planes big enough to be packed by several threads (ranges aligned to 8 values): the stream
// equals a bit-by-bit reference, and unpacks to the values.
TEST(PackCoefficients, LargePlanesPackBitForBitLikeTheReference) {
  for (const uint32_t bits : {7u, 33u, 35u, 36u, 48u, 56u}) {
    std::vector<uint64_t> v(200003);
    uint64_t s = 0x243F6A8885A308D3ull ^ bits;
    for (auto& x : v) {
      s ^= s << 13;
      s ^= s >> 7;
      s ^= s << 17;
      x = s & ((uint64_t{1} << bits) - 1);
    }
    std::vector<uint8_t> want((v.size() * bits + 7) / 8, 0);
    for (size_t i = 0; i < v.size(); ++i) {
      for (uint32_t b = 0; b < bits; ++b) {
        const size_t bit = i * bits + b;
        if ((v[i] >> b) & 1)
          want[bit / 8] = static_cast<uint8_t>(want[bit / 8] | (1u << (bit % 8)));
      }
    }
    std::vector<uint8_t> packed(want.size(), 0xCD);
    fhe::pack_coefficients(v.data(), v.size(), bits, packed.data());
    EXPECT_TRUE(packed == want) << "bits=" << bits;
    std::vector<uint64_t> back(v.size());
    fhe::unpack_coefficients(packed.data(), v.size(), bits, back.data());
    EXPECT_TRUE(back == v) << "bits=" << bits;
  }
}

TEST(ModSwitch, ChoosesFewBitsForRealisticWeightsAndRefusesHopelessOnes) {
  const auto& p = fhe::Params::P48();
  const auto worst = fhe::worst_case_bounds(2048);
  const uint32_t d = fhe::choose_log2_delta(p, worst, 2048 * 2048);
  const uint32_t b = fhe::choose_switch_bits(p, d, worst, 2048 * 2048);
  EXPECT_GE(b, 28u);
  EXPECT_LE(b, 36u);
  // Weights like a quantized projection (|w| ~ 20 on average): more room, fewer bits.
  fhe::WeightBounds real{2048 * 24, 28.0 * std::sqrt(2048.0), 2048};
  const uint32_t d2 = fhe::choose_log2_delta(p, real, 2048 * 2048);
  EXPECT_GT(d2, d);
  EXPECT_LT(fhe::choose_switch_bits(p, d2, real, 2048 * 2048), b);
  // A scale that barely carries the noise leaves nothing to switch away.
  EXPECT_EQ(fhe::choose_switch_bits(p, 8, worst, 2048 * 2048), 0u);
}

class SwitchedProduct : public ::testing::TestWithParam<std::tuple<size_t, bool>> {};

TEST_P(SwitchedProduct, DecryptsExactlyAndShrinksTheReply) {
  const auto [inner, transpose] = GetParam();
  const size_t other = 37, t = 2049;
  const size_t d_out = transpose ? inner : other, d_in = transpose ? other : inner;
  auto w = random_int8(d_out * d_in, 3 + inner);
  auto x = random_int8(inner * t, 4 + inner);
  for (size_t j = 0; j < inner; ++j) x[j * t] = -128;  // an extreme column
  const auto key = fhe::SecretKey::generate(ctx());
  fhe::Encryptor enc(key);
  fhe::PlaneGemm g(ctx(), w.data(), d_out, d_in, transpose);
  auto prod = g.multiply(enc.encrypt(x.data(), inner, t, g.bounds(), g.out_dim() * t));
  const size_t full = fhe::serialize(*ctx(), prod).size();
  const uint32_t bits = g.switch_reply(prod);
  ASSERT_GT(bits, 0u);
  ASSERT_EQ(prod.kind, fhe::CtKind::kSwitched);
  const auto bytes = fhe::serialize(*ctx(), prod);
  EXPECT_LT(bytes.size() * 48, full * bits + 48 * 200);  // shrank by bits/48
  // Exact after a trip through the wire format.
  const auto back = fhe::deserialize(*ctx(), bytes.data(), bytes.size());
  EXPECT_EQ(back.log2_modulus, bits);
  EXPECT_EQ(fhe::Decryptor(key).decrypt(back), plain_product(w, d_out, d_in, transpose, x, t))
      << "inner=" << inner << " bits=" << bits;
}

INSTANTIATE_TEST_SUITE_P(Grid, SwitchedProduct,
                         ::testing::Combine(::testing::Values(7, 2048, 5632), ::testing::Bool()));

TEST(ModSwitch, RefusesMalformedSwitchedCiphertexts) {
  auto w = random_int8(6 * 16, 9);
  auto x = random_int8(16 * 5, 10);
  const auto key = fhe::SecretKey::generate(ctx());
  fhe::PlaneGemm g(ctx(), w.data(), 6, 16, false);
  auto prod = g.multiply(fhe::Encryptor(key).encrypt(x.data(), 16, 5, g.bounds(), 30));
  ASSERT_GT(g.switch_reply(prod), 0u);
  EXPECT_THROW(g.switch_reply(prod), fhe::FheError);  // already switched
  auto bad = prod;
  bad.log2_modulus = 40;
  EXPECT_THROW(fhe::serialize(*ctx(), bad), fhe::FheError);
  bad = prod;
  bad.c1[0] = uint64_t{1} << prod.log2_modulus;
  EXPECT_THROW(fhe::serialize(*ctx(), bad), fhe::FheError);
  auto bytes = fhe::serialize(*ctx(), prod);
  bytes[52] = 60;  // bits field
  EXPECT_THROW(fhe::deserialize(*ctx(), bytes.data(), bytes.size()), fhe::FheError);
}

}  // namespace
