// End-to-end exactness of the encrypted linear layer: encrypt X, multiply by W or W^T with the
// oneDNN digit-plane GEMM (what a worker does), decrypt, and compare with the int64 product.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <memory>
#include <string>
#include <tuple>

#include "fhe/encryptor.h"
#include "fhe/noise.h"
#include "fhe/plane_gemm.h"
#include "fhe/stacked_product.h"
#include "test_util.h"

namespace {

using fhe_test::ctx;
using fhe_test::plain_product;
using fhe_test::random_int8;

// Puts the extremes in: W row 0 all -128, row 1 all 127 (of the effective matrix), X column 0
// all -128 and column 1 all 127, so the largest possible |y| = 128 * 128 * d_in occurs.
void add_extremes(std::vector<int8_t>& w, size_t d_out, size_t d_in, bool transpose,
                  std::vector<int8_t>& x, size_t in, size_t t) {
  const size_t rows = transpose ? d_in : d_out, cols = transpose ? d_out : d_in;
  for (size_t r = 0; r < std::min<size_t>(2, rows); ++r) {
    for (size_t c = 0; c < cols; ++c) {
      const size_t idx = transpose ? c * d_in + r : r * d_in + c;
      w[idx] = r == 0 ? -128 : 127;
    }
  }
  for (size_t j = 0; j < in; ++j) {
    x[j * t] = -128;
    if (t > 1) x[j * t + 1] = 127;
  }
}

class ExactProduct : public ::testing::TestWithParam<std::tuple<size_t, bool>> {};

TEST_P(ExactProduct, DecryptsToThePlaintextProductBitForBit) {
  const auto [inner, transpose] = GetParam();
  const size_t d_out_w = transpose ? inner : 3, d_in_w = transpose ? 3 : inner;
  auto w = random_int8(d_out_w * d_in_w, 11 + inner);
  const auto key = fhe::SecretKey::generate(ctx());
  fhe::Encryptor enc(key);
  fhe::Decryptor dec(key);
  fhe::PlaneGemm gemm(ctx(), w.data(), d_out_w, d_in_w, transpose);
  ASSERT_EQ(gemm.in_dim(), inner);
  for (size_t t : {1, 2047, 2048, 2049, 5000}) {
    auto x = random_int8(inner * t, 1000 * t + inner);
    auto w2 = w;
    add_extremes(w2, d_out_w, d_in_w, transpose, x, inner, t);
    fhe::PlaneGemm g2(ctx(), w2.data(), d_out_w, d_in_w, transpose);
    // The encryptor does not know W: it assumes the worst case for the inner dimension.
    const auto ct = enc.encrypt(x.data(), inner, t, fhe::worst_case_bounds(inner));
    ASSERT_EQ(ct.blocks(2048), (t + 2047) / 2048);
    const auto prod = g2.multiply(ct);
    const auto y = dec.decrypt(prod);
    const auto expect = plain_product(w2, d_out_w, d_in_w, transpose, x, t);
    ASSERT_EQ(y.size(), expect.size());
    size_t mismatches = 0;
    for (size_t i = 0; i < y.size(); ++i) mismatches += (y[i] != expect[i]);
    ASSERT_EQ(mismatches, 0u) << "inner=" << inner << " T=" << t << " transpose=" << transpose;
    if (inner > 1) {
      // The extreme row/column pair reaches the largest magnitude the bound allows.
      const int64_t peak = 128 * 128 * static_cast<int64_t>(inner);
      EXPECT_EQ(expect[0], peak);  // (-128) * (-128) summed over the inner dimension
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Grid, ExactProduct,
                         ::testing::Combine(::testing::Values(1, 7, 2048, 5632), ::testing::Bool()),
                         [](const auto& test) {
                           return "inner" + std::to_string(std::get<0>(test.param)) +
                                  (std::get<1>(test.param) ? "_transposed" : "_plain");
                         });

TEST(PlaneGemm, MatchesTheReferenceWordForWordWithBothDigitWidths) {
  const size_t d_out = 70, d_in = 300, t = 2049;
  auto w = random_int8(d_out * d_in, 5);
  auto x = random_int8(d_in * t, 6);
  const auto key = fhe::SecretKey::generate(ctx());
  fhe::Encryptor enc(key);
  const auto ct = enc.encrypt(x.data(), d_in, t, fhe::worst_case_bounds(d_in));
  const auto ref = fhe::reference_multiply(*ctx(), w.data(), d_out, d_in, false, ct);
  for (int bits : {7, 8}) {
    for (size_t chunk : {size_t{0}, size_t{8}, size_t{128}}) {
      fhe::PlaneGemm g(ctx(), w.data(), d_out, d_in, false, {bits, chunk, 0});
      EXPECT_EQ(g.planes(), bits == 8 ? 6 : 7);
      const auto out = g.multiply(ct);
      EXPECT_EQ(out.c0, ref.c0) << "bits=" << bits << " chunk=" << chunk;
      EXPECT_EQ(out.c1, ref.c1) << "bits=" << bits << " chunk=" << chunk;
    }
  }
  // Transposed product against the reference too.
  auto x2 = random_int8(d_out * 33, 7);
  const auto ct2 = enc.encrypt(x2.data(), d_out, 33, fhe::worst_case_bounds(d_out));
  fhe::PlaneGemm gt(ctx(), w.data(), d_out, d_in, true);
  const auto out2 = gt.multiply(ct2);
  const auto ref2 = fhe::reference_multiply(*ctx(), w.data(), d_out, d_in, true, ct2);
  EXPECT_EQ(out2.c0, ref2.c0);
  EXPECT_EQ(out2.c1, ref2.c1);
}

// A block of columns of a wider matrix (weight_stride), read in place or packed: the product of
// W[:, c0:c1]^T is rows [c0, c1) of W^T's product word for word, and W[:, c0:c1]'s that of the
// dense copy of the block; its bounds are the block's.
TEST(PlaneGemm, ColumnBlocksOfAWiderMatrixAreItsRowsOfTheProduct) {
  const size_t d_out = 40, d_in = 90, c0 = 17, c1 = 61, t = 2049;
  const auto w = random_int8(d_out * d_in, 11);
  std::vector<int8_t> block(d_out * (c1 - c0));
  for (size_t i = 0; i < d_out; ++i) {
    std::copy_n(w.data() + i * d_in + c0, c1 - c0, block.data() + i * (c1 - c0));
  }
  const auto key = fhe::SecretKey::generate(ctx());
  fhe::Encryptor enc(key);
  const auto xt = random_int8(d_out * t, 12);
  const auto ct = enc.encrypt(xt.data(), d_out, t, fhe::worst_case_bounds(d_out));
  const auto whole = fhe::PlaneGemm(ctx(), w.data(), d_out, d_in, true).multiply(ct);
  const size_t n = ctx()->n(), rows = c1 - c0;
  for (const bool borrow : {true, false}) {
    fhe::PlaneGemm part(ctx(), w.data() + c0, d_out, rows, true,
                        {.borrow_weights = borrow, .weight_stride = d_in});
    const auto dense = fhe::measure_bounds(block.data(), d_out, rows, true);
    EXPECT_EQ(part.bounds().max_row_l1, dense.max_row_l1);
    EXPECT_EQ(part.bounds().max_row_l2, dense.max_row_l2);
    const auto y = part.multiply(ct);
    ASSERT_EQ(y.rows, rows);
    for (size_t b = 0; b < ct.blocks(n); ++b) {
      for (size_t r = 0; r < rows; ++r) {
        const size_t at = (b * rows + r) * n, from = (b * d_in + c0 + r) * n;
        ASSERT_TRUE(std::equal(y.c0.begin() + at, y.c0.begin() + at + n, whole.c0.begin() + from))
            << "borrow " << borrow << " block " << b << " row " << r;
        ASSERT_TRUE(std::equal(y.c1.begin() + at, y.c1.begin() + at + n, whole.c1.begin() + from))
            << "borrow " << borrow << " block " << b << " row " << r;
      }
    }
    // Forward: the strided block against its dense copy.
    const auto x = random_int8(rows * 5, 13);
    const auto cf = enc.encrypt(x.data(), rows, 5, fhe::worst_case_bounds(rows));
    fhe::PlaneGemm strided(ctx(), w.data() + c0, d_out, rows, false,
                           {.borrow_weights = borrow, .weight_stride = d_in});
    const auto want = fhe::PlaneGemm(ctx(), block.data(), d_out, rows, false).multiply(cf);
    const auto got = strided.multiply(cf);
    EXPECT_EQ(got.c0, want.c0) << "borrow " << borrow;
    EXPECT_EQ(got.c1, want.c1) << "borrow " << borrow;
    if (borrow) std::printf("strided borrowed weights: %s\n", part.implementation());
  }
  EXPECT_THROW(fhe::PlaneGemm(ctx(), w.data(), d_out, d_in, true, {.weight_stride = d_in - 1}),
               fhe::FheError);
}

// The stacked product of three parts (rows 40, 25, 35 of one ciphertext, past one block) is the
// product of the stacked matrix [W_0; W_1; W_2]^T word for word, and decrypts to its plaintext.
TEST(StackedProduct, EqualsTheStackedMatrixWordForWord) {
  const size_t d_in = 30, t = 2049;
  const std::vector<size_t> rows = {40, 25, 35};
  std::vector<std::vector<int8_t>> ws;
  std::vector<int8_t> stacked;
  std::vector<std::unique_ptr<fhe::PlaneGemm>> gemms;
  std::vector<const fhe::PlaneGemm*> parts;
  size_t total = 0;
  for (size_t j = 0; j < rows.size(); ++j) {
    ws.push_back(random_int8(rows[j] * d_in, 20 + j));
    stacked.insert(stacked.end(), ws[j].begin(), ws[j].end());
    gemms.push_back(std::make_unique<fhe::PlaneGemm>(ctx(), ws[j].data(), rows[j], d_in, true));
    parts.push_back(gemms.back().get());
    total += rows[j];
  }
  std::vector<fhe::WeightBounds> bounds;
  for (const auto* g : parts) bounds.push_back(g->bounds());
  const fhe::WeightBounds b = fhe::stacked_bounds(bounds);
  const fhe::WeightBounds exact = fhe::measure_bounds(stacked.data(), total, d_in, true);
  EXPECT_EQ(b.inner_dim, total);
  EXPECT_GE(b.max_row_l1, exact.max_row_l1);
  EXPECT_GE(b.max_row_l2, exact.max_row_l2);

  const auto key = fhe::SecretKey::generate(ctx());
  const auto x = random_int8(total * t, 24);
  const auto ct = fhe::Encryptor(key).encrypt(x.data(), total, t, b, d_in * t);
  const auto out = fhe::stacked_multiply(parts, ct);
  const auto ref = fhe::reference_multiply(*ctx(), stacked.data(), total, d_in, true, ct);
  EXPECT_EQ(out.rows, d_in);
  EXPECT_EQ(out.c0, ref.c0);
  EXPECT_EQ(out.c1, ref.c1);
  EXPECT_EQ(fhe::Decryptor(key).decrypt(out), plain_product(stacked, total, d_in, true, x, t));

  // Refusals: rows that are not the parts' sum, parts of different widths.
  const auto short_ct = fhe::Encryptor(key).encrypt(x.data(), total - 1, 3, b, d_in * 3);
  EXPECT_THROW(fhe::stacked_multiply(parts, short_ct), fhe::FheError);
  const auto other = random_int8(5 * (d_in + 1), 25);
  fhe::PlaneGemm wide(ctx(), other.data(), 5, d_in + 1, true);
  const std::vector<const fhe::PlaneGemm*> mixed = {parts[0], &wide};
  EXPECT_THROW(fhe::stacked_multiply(mixed, ct), fhe::FheError);
}

TEST(PlaneGemm, WideOutputAndSeveralThreadsStayExact) {
  const size_t d_out = 600, d_in = 2048, t = 2048;
  auto w = random_int8(d_out * d_in, 15);
  auto x = random_int8(d_in * t, 16);
  const auto key = fhe::SecretKey::generate(ctx());
  fhe::Encryptor enc(key);
  fhe::Decryptor dec(key);
  const auto ct = enc.encrypt(x.data(), d_in, t, fhe::worst_case_bounds(d_in));
  fhe::PlaneGemm g(ctx(), w.data(), d_out, d_in, false);
  EXPECT_EQ(dec.decrypt(g.multiply(ct)), plain_product(w, d_out, d_in, false, x, t));
}

TEST(PortablePaths, GiveTheSameExactProductsAsTheVectorisedOnes) {
  // The same key in a context forced onto the portable code paths and in the default one.
  const auto portable = fhe::Context::create(fhe::Params::P48(), /*portable=*/true);
  ASSERT_FALSE(portable->vectorised());
  const auto fast_key = fhe::SecretKey::generate(ctx());
  const auto slow_key = fhe::SecretKey::from_coefficients(portable, fast_key.coefficients());
  const size_t d_out = 33, d_in = 130, t = 2100;
  auto w = random_int8(d_out * d_in, 61);
  auto x = random_int8(d_in * t, 62);
  const auto expect = plain_product(w, d_out, d_in, false, x, t);
  fhe::PlaneGemm slow_gemm(portable, w.data(), d_out, d_in, false);
  fhe::PlaneGemm fast_gemm(ctx(), w.data(), d_out, d_in, false);
  // Portable encryption, vectorised product and decryption, and the other way round.
  const auto ct_slow = fhe::Encryptor(slow_key).encrypt(x.data(), d_in, t, slow_gemm.bounds());
  const auto ct_fast = fhe::Encryptor(fast_key).encrypt(x.data(), d_in, t, fast_gemm.bounds());
  EXPECT_EQ(fhe::Decryptor(fast_key).decrypt(fast_gemm.multiply(ct_slow)), expect);
  EXPECT_EQ(fhe::Decryptor(slow_key).decrypt(slow_gemm.multiply(ct_fast)), expect);
  // The two products of one ciphertext are the same words.
  const auto p1 = slow_gemm.multiply(ct_fast), p2 = fast_gemm.multiply(ct_fast);
  EXPECT_EQ(p1.c0, p2.c0);
  EXPECT_EQ(p1.c1, p2.c1);
  // Switched replies decrypt on both paths too.
  auto s1 = p1;
  ASSERT_GT(slow_gemm.switch_reply(s1), 0u);
  EXPECT_EQ(fhe::Decryptor(slow_key).decrypt(s1), expect);
  EXPECT_EQ(fhe::Decryptor(fast_key).decrypt(s1), expect);
}

TEST(Encryption, TwoEncryptionsOfTheSameMatrixDiffer) {
  auto x = random_int8(4 * 100, 21);
  const auto key = fhe::SecretKey::generate(ctx());
  fhe::Encryptor enc(key);
  const auto a = enc.encrypt(x.data(), 4, 100, 20);
  const auto b = enc.encrypt(x.data(), 4, 100, 20);
  EXPECT_NE(a.seed, b.seed);
  size_t equal = 0;
  for (size_t i = 0; i < a.c0.size(); ++i) equal += (a.c0[i] == b.c0[i]);
  EXPECT_LT(equal, a.c0.size() / 1000 + 1);
  // Yet both decrypt to X.
  fhe::Decryptor dec(key);
  std::vector<int64_t> want(x.begin(), x.end());
  EXPECT_EQ(dec.decrypt(a), want);
  EXPECT_EQ(dec.decrypt(b), want);
}

TEST(Encryption, AnotherKeyDoesNotDecryptTheProduct) {
  const size_t d_out = 5, d_in = 64, t = 300;
  auto w = random_int8(d_out * d_in, 31);
  auto x = random_int8(d_in * t, 32);
  const auto key = fhe::SecretKey::generate(ctx());
  const auto other = fhe::SecretKey::generate(ctx());
  ASSERT_NE(key.coefficients(), other.coefficients());
  fhe::Encryptor enc(key);
  fhe::PlaneGemm g(ctx(), w.data(), d_out, d_in, false);
  const auto prod = g.multiply(enc.encrypt(x.data(), d_in, t, fhe::worst_case_bounds(d_in)));
  const auto expect = plain_product(w, d_out, d_in, false, x, t);
  EXPECT_EQ(fhe::Decryptor(key).decrypt(prod), expect);
  const auto wrong = fhe::Decryptor(other).decrypt(prod);
  size_t equal = 0;
  for (size_t i = 0; i < wrong.size(); ++i) equal += (wrong[i] == expect[i]);
  EXPECT_LT(equal, wrong.size() / 100 + 1);
}

TEST(NoiseCheck, RefusesAnImpossibleInnerDimension) {
  const auto& p = fhe::Params::P48();
  EXPECT_THROW(fhe::choose_log2_delta(p, fhe::worst_case_bounds(100000)), fhe::FheError);
  EXPECT_THROW(fhe::choose_log2_delta(p, fhe::worst_case_bounds(uint64_t{1} << 40)), fhe::FheError);
  // The worst case works up to 8191 and is refused from 8192 on.
  EXPECT_NO_THROW(fhe::choose_log2_delta(p, fhe::worst_case_bounds(8191)));
  EXPECT_THROW(fhe::choose_log2_delta(p, fhe::worst_case_bounds(8192)), fhe::FheError);
  try {
    fhe::choose_log2_delta(p, fhe::worst_case_bounds(100000));
  } catch (const fhe::FheError& e) {
    EXPECT_NE(std::string(e.what()).find("100000"), std::string::npos) << e.what();
  }
}

TEST(NoiseCheck, WorkerRefusesAProductTheScaleCannotCarry) {
  const size_t d_out = 4, d_in = 512, t = 10;
  auto heavy = std::vector<int8_t>(d_out * d_in, -128);
  auto x = random_int8(d_in * t, 41);
  const auto key = fhe::SecretKey::generate(ctx());
  fhe::Encryptor enc(key);
  fhe::PlaneGemm g(ctx(), heavy.data(), d_out, d_in, false);
  // Scale chosen for tiny weights: the message would overflow q.
  const auto big = enc.encrypt(x.data(), d_in, t, fhe::WeightBounds{10, 4.0, d_in});
  EXPECT_THROW(g.multiply(big), fhe::FheError);
  // Scale far too small for the noise of this matrix.
  const auto small = enc.encrypt(x.data(), d_in, t, 6);
  EXPECT_THROW(g.multiply(small), fhe::FheError);
  // The right scale passes.
  const auto ok = enc.encrypt(x.data(), d_in, t, fhe::worst_case_bounds(d_in));
  EXPECT_EQ(fhe::Decryptor(key).decrypt(g.multiply(ok)),
            plain_product(heavy, d_out, d_in, false, x, t));
}

TEST(PlaneGemm, RefusesMismatchedAndMalformedCiphertexts) {
  auto w = random_int8(8 * 16, 51);
  auto x = random_int8(16 * 5, 52);
  const auto key = fhe::SecretKey::generate(ctx());
  fhe::Encryptor enc(key);
  fhe::PlaneGemm g(ctx(), w.data(), 8, 16, false);
  auto ct = enc.encrypt(x.data(), 16, 5, fhe::worst_case_bounds(16));
  EXPECT_NO_THROW(g.multiply(ct));
  fhe::PlaneGemm gt(ctx(), w.data(), 8, 16, true);  // expects 8 rows
  EXPECT_THROW(gt.multiply(ct), fhe::FheError);
  auto bad = ct;
  bad.c0[3] = fhe::Params::P48().q;  // out of range
  EXPECT_THROW(g.multiply(bad), fhe::FheError);
  bad = ct;
  bad.c0.pop_back();
  EXPECT_THROW(g.multiply(bad), fhe::FheError);
  bad = ct;
  bad.params_id = 9;
  EXPECT_THROW(g.multiply(bad), fhe::FheError);
  EXPECT_THROW(fhe::PlaneGemm(ctx(), w.data(), 0, 16, false), fhe::FheError);
  std::vector<int8_t> huge(70000);
  EXPECT_THROW(fhe::PlaneGemm(ctx(), huge.data(), 1, 70000, false), fhe::FheError);
}

}  // namespace
