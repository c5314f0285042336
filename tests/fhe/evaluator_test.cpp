// The evaluator interface (fhe/evaluator.h): the CPU evaluator's products equal the portable
// reference word for word (single, batched, stacked parts), its reply switch is
// fhe::switch_reply's, the input check refuses what it must, and the batch layout round-trips.
#include <gtest/gtest.h>

#include <algorithm>
#include <memory>
#include <vector>

#include "fhe/cpu_evaluator.h"
#include "fhe/encryptor.h"
#include "fhe/evaluator.h"
#include "fhe/modswitch.h"
#include "fhe/plane_gemm.h"
#include "fhe/prng.h"
#include "fhe/stacked_product.h"
#include "test_util.h"

namespace {

using fhe_test::ctx;
using fhe_test::plain_product;
using fhe_test::random_int8;

fhe::ProductSpec spec_of(const std::vector<int8_t>& w, size_t d_out, size_t d_in, bool transpose) {
  return fhe::ProductSpec{.w = w.data(), .d_out = d_out, .d_in = d_in, .transpose = transpose};
}

TEST(CpuEvaluator, ProductEqualsTheReferenceWordForWord) {
  const size_t d_out = 9, d_in = 13;
  const auto w = random_int8(d_out * d_in, 301);
  const auto key = fhe::SecretKey::generate(ctx());
  fhe::Encryptor enc(key);
  for (const bool transpose : {false, true}) {
    const auto eval = fhe::make_cpu_evaluator(ctx(), spec_of(w, d_out, d_in, transpose));
    const size_t in = transpose ? d_out : d_in, out = transpose ? d_in : d_out;
    ASSERT_EQ(eval->in_dim(), in);
    ASSERT_EQ(eval->out_dim(), out);
    EXPECT_EQ(eval->bounds().max_row_l1,
              fhe::measure_bounds(w.data(), d_out, d_in, transpose).max_row_l1);
    for (const size_t t : {1, 2049}) {  // one block, and two
      const auto x = random_int8(in * t, 310 + t);
      const auto ct = enc.encrypt(x.data(), in, t, eval->bounds(), out * t);
      const auto got = eval->multiply(ct);
      const auto ref = fhe::reference_multiply(*ctx(), w.data(), d_out, d_in, transpose, ct);
      EXPECT_EQ(got.kind, fhe::CtKind::kProduct);
      EXPECT_EQ(got.rows, out);
      EXPECT_EQ(got.cols, t);
      EXPECT_EQ(got.c0, ref.c0) << "transpose " << transpose << " T " << t;
      EXPECT_EQ(got.c1, ref.c1) << "transpose " << transpose << " T " << t;
      EXPECT_EQ(fhe::Decryptor(key).decrypt(got), plain_product(w, d_out, d_in, transpose, x, t));
    }
  }
}

// One GEMM over a batch gives each input's own product, word for word.
TEST(CpuEvaluator, BatchEqualsSeparateProducts) {
  const size_t d_out = 7, d_in = 11;
  const auto w = random_int8(d_out * d_in, 320);
  const auto key = fhe::SecretKey::generate(ctx());
  fhe::Encryptor enc(key);
  const auto eval = fhe::make_cpu_evaluator(ctx(), spec_of(w, d_out, d_in, false));
  std::vector<fhe::CiphertextMatrix> ins;
  for (const size_t t : {3, 2050, 1}) {
    const auto x = random_int8(d_in * t, 330 + t);
    ins.push_back(enc.encrypt(x.data(), d_in, t, eval->bounds(), d_out * t));
  }
  std::vector<const fhe::CiphertextMatrix*> in_ptrs;
  std::vector<fhe::CiphertextMatrix> outs(ins.size());
  std::vector<fhe::CiphertextMatrix*> out_ptrs;
  for (size_t i = 0; i < ins.size(); ++i) {
    in_ptrs.push_back(&ins[i]);
    out_ptrs.push_back(&outs[i]);
  }
  eval->multiply_batch(in_ptrs, out_ptrs);
  for (size_t i = 0; i < ins.size(); ++i) {
    const auto ref = fhe::reference_multiply(*ctx(), w.data(), d_out, d_in, false, ins[i]);
    EXPECT_EQ(outs[i].cols, ins[i].cols);
    EXPECT_EQ(outs[i].c0, ref.c0) << i;
    EXPECT_EQ(outs[i].c1, ref.c1) << i;
  }
  // A bad input anywhere refuses the whole batch before any work.
  ins[1].params_id = 9;
  EXPECT_THROW(eval->multiply_batch(in_ptrs, out_ptrs), fhe::FheError);
}

// Stacked parts through the evaluator interface equal the stacked matrix's reference product.
TEST(CpuEvaluator, StackedPartsEqualTheStackedMatrix) {
  const size_t d_in = 10, t = 5;
  const std::vector<size_t> rows = {6, 4};
  std::vector<std::vector<int8_t>> ws;
  std::vector<int8_t> stacked;
  std::vector<std::unique_ptr<fhe::ProductEvaluator>> evals;
  std::vector<const fhe::ProductEvaluator*> parts;
  for (size_t j = 0; j < rows.size(); ++j) {
    ws.push_back(random_int8(rows[j] * d_in, 340 + j));
    stacked.insert(stacked.end(), ws[j].begin(), ws[j].end());
  }
  for (size_t j = 0; j < rows.size(); ++j) {
    evals.push_back(fhe::make_cpu_evaluator(ctx(), spec_of(ws[j], rows[j], d_in, true)));
    EXPECT_TRUE(evals.back()->stacks());
    parts.push_back(evals.back().get());
  }
  std::vector<fhe::WeightBounds> bounds;
  for (const auto* p : parts) bounds.push_back(p->bounds());
  const auto key = fhe::SecretKey::generate(ctx());
  const auto x = random_int8(10 * t, 350);
  const auto ct =
      fhe::Encryptor(key).encrypt(x.data(), 10, t, fhe::stacked_bounds(bounds), d_in * t);
  const auto got = fhe::stacked_multiply(parts, ct);
  const auto ref = fhe::reference_multiply(*ctx(), stacked.data(), 10, d_in, true, ct);
  EXPECT_EQ(got.c0, ref.c0);
  EXPECT_EQ(got.c1, ref.c1);
}

// The evaluator's reply switch, PlaneGemm's and the free fhe::switch_reply agree word for word.
TEST(CpuEvaluator, SwitchReplyIsTheSharedOne) {
  const size_t d_out = 8, d_in = 16, t = 20;
  const auto w = random_int8(d_out * d_in, 360);
  const auto key = fhe::SecretKey::generate(ctx());
  const auto eval = fhe::make_cpu_evaluator(ctx(), spec_of(w, d_out, d_in, false));
  fhe::PlaneGemm gemm(ctx(), w.data(), d_out, d_in, false);
  const auto x = random_int8(d_in * t, 361);
  const auto ct = fhe::Encryptor(key).encrypt(x.data(), d_in, t, eval->bounds(), d_out * t);
  auto a = eval->multiply(ct), b = a, c = a;
  const uint32_t bits = eval->switch_reply(a);
  ASSERT_GT(bits, 0u);
  EXPECT_EQ(gemm.switch_reply(b), bits);
  EXPECT_EQ(fhe::switch_reply(*ctx(), c, eval->bounds(), d_out * t), bits);
  EXPECT_EQ(a.kind, fhe::CtKind::kSwitched);
  EXPECT_EQ(a.c0, b.c0);
  EXPECT_EQ(a.c1, b.c1);
  EXPECT_EQ(a.c0, c.c0);
  EXPECT_EQ(a.c1, c.c1);
  EXPECT_EQ(fhe::Decryptor(key).decrypt(a), plain_product(w, d_out, d_in, false, x, t));
  EXPECT_THROW(eval->switch_reply(a), fhe::FheError);  // already switched
  auto fresh = ct;
  EXPECT_THROW(fhe::switch_reply(*ctx(), fresh, eval->bounds(), 1), fhe::FheError);
}

TEST(CheckFreshInput, RefusesWhatNoProductCanTake) {
  const size_t d_out = 4, d_in = 6, t = 3;
  const auto w = random_int8(d_out * d_in, 370);
  const auto bounds = fhe::measure_bounds(w.data(), d_out, d_in, false);
  const auto key = fhe::SecretKey::generate(ctx());
  const auto x = random_int8(d_in * t, 371);
  const auto ct = fhe::Encryptor(key).encrypt(x.data(), d_in, t, bounds, d_out * t);
  const fhe::Context& c = *ctx();
  EXPECT_NO_THROW(fhe::check_fresh_input(c, ct, d_in, d_out, bounds));
  EXPECT_THROW(fhe::check_fresh_input(c, ct, d_in - 1, d_out, bounds), fhe::FheError);  // rows
  // A part of the rows: inside, and past the end.
  EXPECT_NO_THROW(fhe::check_fresh_input(c, ct, 4, d_out, bounds, {.row_begin = 2}));
  EXPECT_THROW(fhe::check_fresh_input(c, ct, 4, d_out, bounds, {.row_begin = 3}), fhe::FheError);
  auto bad = ct;
  bad.c0[1] = c.q();  // out of range: refused unless the range is checked later
  EXPECT_THROW(fhe::check_fresh_input(c, bad, d_in, d_out, bounds), fhe::FheError);
  EXPECT_NO_THROW(fhe::check_fresh_input(c, bad, d_in, d_out, bounds, {.check_range = false}));
  bad = ct;
  bad.params_id = 9;
  EXPECT_THROW(fhe::check_fresh_input(c, bad, d_in, d_out, bounds), fhe::FheError);
  // A scale far too small for the noise of these weights.
  const auto small = fhe::Encryptor(key).encrypt(x.data(), d_in, t, 4);
  EXPECT_THROW(fhe::check_fresh_input(c, small, d_in, d_out, bounds), fhe::FheError);
  // Products are not inputs.
  const auto product = fhe::make_cpu_evaluator(ctx(), spec_of(w, d_out, d_in, false))->multiply(ct);
  EXPECT_THROW(fhe::check_fresh_input(c, product, d_out, d_out, bounds), fhe::FheError);
}

// gather_batch then scatter_batch (a GEMM by the identity) gives back every input's c0 and its
// seed-expanded mask rows, each input in its own blocks and tokens.
TEST(BatchLayout, GatherAndScatterRoundTrip) {
  const fhe::Context& c = *ctx();
  const size_t n = c.n(), rows = 3;
  const auto key = fhe::SecretKey::generate(ctx());
  std::vector<fhe::CiphertextMatrix> ins;
  for (const size_t t : {size_t{2}, 2 * n + 1, n}) {
    const auto x = random_int8(rows * t, 380 + t);
    ins.push_back(fhe::Encryptor(key).encrypt(x.data(), rows, t, fhe::worst_case_bounds(rows)));
  }
  std::vector<const fhe::CiphertextMatrix*> in_ptrs;
  for (const auto& ct : ins) in_ptrs.push_back(&ct);
  const fhe::BatchLayout layout = fhe::batch_layout(n, rows, rows, in_ptrs);
  EXPECT_EQ(layout.blocks, 1u + 3u + 1u);
  EXPECT_EQ(layout.first_block, (std::vector<size_t>{0, 1, 4}));
  EXPECT_EQ(layout.input_words(), 2 * 5 * rows * n);
  std::vector<uint64_t> buffer(layout.input_words());
  fhe::gather_batch(c, layout, in_ptrs, buffer.data(), 2);
  std::vector<fhe::CiphertextMatrix> outs(ins.size());
  std::vector<fhe::CiphertextMatrix*> out_ptrs;
  for (auto& o : outs) out_ptrs.push_back(&o);
  fhe::scatter_batch(layout, in_ptrs, buffer.data(), out_ptrs);
  for (size_t i = 0; i < ins.size(); ++i) {
    const fhe::CiphertextMatrix& ct = ins[i];
    const fhe::CiphertextMatrix& o = outs[i];
    EXPECT_EQ(o.kind, fhe::CtKind::kProduct);
    EXPECT_EQ(o.rows, rows);
    EXPECT_EQ(o.cols, ct.cols);
    EXPECT_EQ(o.seed, ct.seed);
    EXPECT_EQ(o.log2_delta, ct.log2_delta);
    EXPECT_EQ(o.c0, ct.c0) << i;
    // The mask half: row (b, j) of input i is its seed's row b * rows + j.
    fhe::SeedExpander ex(ct.seed, n, c.q());
    fhe::CoeffVector want(ct.c0.size());
    for (size_t r = 0; r < ct.blocks(n) * rows; ++r) ex.expand_row(r, want.data() + r * n);
    EXPECT_EQ(o.c1, want) << i;
    // expand_mask_rows alone, from a row in the middle.
    std::vector<uint64_t> part(2 * n);
    fhe::expand_mask_rows(c, ct.seed, 1, 2, part.data());
    EXPECT_TRUE(std::equal(part.begin(), part.end(), want.begin() + n)) << i;
  }
}

}  // namespace
