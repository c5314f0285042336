// Products kept in their received packed planes (CiphertextMatrix::packed): decrypting them row
// by row from the packed bytes (into a matrix, or row by row to a sink) gives the unpacked
// product's results bit for bit, split into any row segments, over several token blocks, for
// products and modulus-switched replies; an out-of-range coefficient or a layout that does not
// cover the rows is refused.
#include <gtest/gtest.h>

#include <algorithm>
#include <memory>
#include <vector>

#include "fhe/encryptor.h"
#include "fhe/plane_gemm.h"
#include "fhe/serialize.h"
#include "test_util.h"

namespace {

using fhe_test::ctx;
using fhe_test::plain_product;
using fhe_test::random_int8;

// `prod` with its planes packed to `bits` and cut into segments starting at `cuts` (row
// indices, increasing, the first 0), each segment's bytes in a buffer of its own.
fhe::CiphertextMatrix packed_copy(const fhe::CiphertextMatrix& prod, uint32_t bits,
                                  const std::vector<uint64_t>& cuts) {
  const size_t n = ctx()->n(), blocks = prod.blocks(n);
  fhe::CiphertextMatrix out = prod;
  out.c0.clear();
  out.c1.clear();
  out.packed_bits = bits;
  for (size_t s = 0; s < cuts.size(); ++s) {
    const uint64_t begin = cuts[s], end = s + 1 < cuts.size() ? cuts[s + 1] : prod.rows;
    std::vector<uint64_t> c0, c1;  // the segment's rows of every block, block-major
    for (size_t b = 0; b < blocks; ++b) {
      const size_t from = (b * prod.rows + begin) * n, to = (b * prod.rows + end) * n;
      c0.insert(c0.end(), prod.c0.begin() + from, prod.c0.begin() + to);
      c1.insert(c1.end(), prod.c1.begin() + from, prod.c1.begin() + to);
    }
    const size_t bytes = c0.size() * bits / 8;
    auto planes = std::make_shared<std::vector<uint8_t>>(2 * bytes);
    fhe::pack_coefficients(c0.data(), c0.size(), bits, planes->data());
    fhe::pack_coefficients(c1.data(), c1.size(), bits, planes->data() + bytes);
    fhe::PackedRows rows;
    rows.row_begin = begin;
    rows.rows = end - begin;
    rows.c0 = planes->data();
    rows.c1 = planes->data() + bytes;
    rows.c0_bytes = rows.c1_bytes = bytes;
    rows.owner = planes;
    out.packed.push_back(rows);
  }
  return out;
}

struct Case {
  size_t d_out, d_in, tokens;
  bool switched;
};

class PackedProduct : public ::testing::TestWithParam<Case> {};

TEST_P(PackedProduct, DecryptsLikeTheUnpackedProduct) {
  const Case c = GetParam();
  auto w = random_int8(c.d_out * c.d_in, 11 + c.d_out);
  auto x = random_int8(c.d_in * c.tokens, 12 + c.tokens);
  const auto key = fhe::SecretKey::generate(ctx());
  fhe::PlaneGemm g(ctx(), w.data(), c.d_out, c.d_in, /*transpose=*/false);
  auto prod = g.multiply(
      fhe::Encryptor(key).encrypt(x.data(), c.d_in, c.tokens, g.bounds(), c.d_out * c.tokens));
  uint32_t bits = ctx()->params().log2_q;
  if (c.switched) {
    bits = g.switch_reply(prod);
    ASSERT_GT(bits, 0u);
  }
  const fhe::Decryptor dec(key);
  const std::vector<int64_t> want = dec.decrypt(prod);
  ASSERT_EQ(want, plain_product(w, c.d_out, c.d_in, false, x, c.tokens));
  for (const std::vector<uint64_t>& cuts : std::vector<std::vector<uint64_t>>{
           {0}, {0, 1}, {0, c.d_out / 3, c.d_out / 3 + 1, c.d_out - 1}}) {
    const fhe::CiphertextMatrix p = packed_copy(prod, bits, cuts);
    ASSERT_TRUE(p.is_packed());
    EXPECT_NO_THROW(fhe::validate(*ctx(), p));
    EXPECT_EQ(dec.decrypt(p), want) << cuts.size() << " segments";
    // decrypt_rows hands over every (row, block) once, with the same integers.
    std::vector<int64_t> rows(want.size(), -777);
    std::vector<int> visits(c.d_out * prod.blocks(ctx()->n()), 0);
    dec.decrypt_rows(p, [&](size_t i, size_t t0, std::span<const int64_t> v) {
      ASSERT_LE(t0 + v.size(), c.tokens);
      std::copy(v.begin(), v.end(), rows.begin() + static_cast<long>(i * c.tokens + t0));
      ++visits[i * prod.blocks(ctx()->n()) + t0 / ctx()->n()];  // distinct slots per call
    });
    EXPECT_EQ(rows, want);
    EXPECT_EQ(std::count(visits.begin(), visits.end(), 1), static_cast<long>(visits.size()));
  }
}

INSTANTIATE_TEST_SUITE_P(Shapes, PackedProduct,
                         ::testing::Values(Case{5, 16, 7, false}, Case{37, 64, 2049, false},
                                           Case{37, 64, 2049, true}, Case{300, 40, 4100, false}));

TEST(PackedProductRefusals, OutOfRangeCoefficientsAndBadLayouts) {
  auto w = random_int8(6 * 16, 3);
  auto x = random_int8(16 * 9, 4);
  const auto key = fhe::SecretKey::generate(ctx());
  fhe::PlaneGemm g(ctx(), w.data(), 6, 16, false);
  const auto prod = g.multiply(fhe::Encryptor(key).encrypt(x.data(), 16, 9, g.bounds(), 54));
  const uint32_t bits = ctx()->params().log2_q;
  const fhe::Decryptor dec(key);

  // A coefficient at q (in range of 48 bits, not of the modulus): refused by the range check
  // and by decryption, which unpacks it.
  auto over = prod;
  over.c1[5 * ctx()->n() + 3] = ctx()->q();
  const fhe::CiphertextMatrix bad = packed_copy(over, bits, {0, 2});
  EXPECT_NO_THROW(fhe::validate(*ctx(), bad, /*check_range=*/false));
  EXPECT_THROW(fhe::validate(*ctx(), bad), fhe::FheError);
  EXPECT_THROW(dec.decrypt(bad), fhe::FheError);

  const fhe::CiphertextMatrix good = packed_copy(prod, bits, {0, 2, 4});
  auto gap = good;
  gap.packed.erase(gap.packed.begin() + 1);  // rows 2-3 missing
  EXPECT_THROW(fhe::validate(*ctx(), gap, false), fhe::FheError);
  auto short_plane = good;
  short_plane.packed[2].c1_bytes -= 1;
  EXPECT_THROW(dec.decrypt(short_plane), fhe::FheError);
  auto wrong_bits = good;
  wrong_bits.packed_bits = 40;
  EXPECT_THROW(fhe::validate(*ctx(), wrong_bits, false), fhe::FheError);
  auto both = good;
  both.c0 = prod.c0;
  EXPECT_THROW(fhe::validate(*ctx(), both, false), fhe::FheError);
  EXPECT_THROW(fhe::unpacked(*ctx(), bad), fhe::FheError);
  const fhe::CiphertextMatrix plain = fhe::unpacked(*ctx(), good);
  EXPECT_FALSE(plain.is_packed());
  EXPECT_TRUE(plain.c0 == prod.c0 && plain.c1 == prod.c1);
  EXPECT_EQ(fhe::serialize(*ctx(), good), fhe::serialize(*ctx(), prod));
  EXPECT_EQ(dec.decrypt(good), dec.decrypt(prod));
}

}  // namespace
