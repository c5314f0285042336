// The CUDA backend of the encrypted linear layer (fhe_cuda).
//
// Without a GPU (or built without CUDA) the device tests skip; the kernels' arithmetic
// (kernels_common.h: AES, keystream words, digit split, recombination) is still checked on the
// host against OpenSSL, fhe::SeedExpander and fhe::reference_multiply, since the device kernels
// run that very code. With a GPU every product must be word-for-word identical to the CPU ones.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "fhe/cpu_evaluator.h"
#include "fhe/cuda_evaluator.h"
#include "fhe/cuda_plane_gemm.h"
#include "fhe/encryptor.h"
#include "fhe/modarith.h"
#include "fhe/plane_gemm.h"
#include "kernels_common.h"
#include "pack48.h"
#include "test_util.h"

namespace {

namespace cd = fhe::cuda_detail;
using fhe_test::ctx;
using fhe_test::plain_product;
using fhe_test::random_int8;

fhe::Seed test_seed(uint8_t base) {
  fhe::Seed s;
  for (size_t i = 0; i < s.size(); ++i) s[i] = static_cast<uint8_t>(base + 37 * i);
  return s;
}

#define REQUIRE_GPU()                                                              \
  do {                                                                             \
    if (fhe::cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device available"; \
  } while (0)

// ---- host checks of the kernel arithmetic (run everywhere) ---------------------------------

struct AesTables {
  uint32_t te0[256];
  uint8_t sbox[256];
  AesTables() {
    for (int i = 0; i < 256; ++i) {
      sbox[i] = cd::aes_sbox(static_cast<uint8_t>(i));
      te0[i] = cd::aes_te0(sbox[i]);
    }
  }
};

// The expansion kernel's algorithm for one row, on the host: words of the spare-padded
// keystream, compaction of the accepted ones. Returns false when the row runs out.
bool host_expand_row(const fhe::Seed& seed, size_t n, uint64_t q, uint64_t row, uint64_t* out) {
  static const AesTables tab;
  cd::SeedKey key{};
  cd::make_seed_key(seed.data(), key);
  const size_t groups = n / 8 + 4;
  size_t pos = 0;
  for (size_t g = 0; g < groups; ++g) {
    uint64_t w[8];
    cd::keystream_words8(key.rk, tab.te0, tab.sbox, key.base_hi, key.base_lo, row, g, w);
    for (uint64_t v : w) {
      if (v < q && pos < n) out[pos++] = v;
    }
  }
  return pos == n;
}

TEST(CudaDevice, CountIsSaneAndConstructionFailsCleanlyWithoutAGpu) {
  const int count = fhe::cuda_device_count();
  EXPECT_GE(count, 0);
  EXPECT_EQ(count, fhe::cuda_device_count());  // stable, never throws
  auto w = random_int8(4 * 8, 1);
  if (count == 0) {
    EXPECT_THROW(fhe::CudaPlaneGemm(ctx(), w.data(), 4, 8, false), fhe::FheError);
    EXPECT_THROW(fhe::CudaPlainGemm(fhe::CudaPlainGemm::Type::kInt8, w.data(), 4, 8, 4),
                 fhe::FheError);
    std::vector<uint64_t> out(2048);
    EXPECT_THROW(fhe::cuda_expand_seed_rows(test_seed(1), 2048, ctx()->q(), 0, 1, out.data()),
                 fhe::FheError);
  } else {
    EXPECT_THROW(fhe::CudaPlaneGemm(ctx(), w.data(), 4, 8, false, count), fhe::FheError);
  }
}

TEST(CudaKernelMath, AesSboxAndKeystreamMatchOpenSsl) {
  const AesTables tab;
  EXPECT_EQ(tab.sbox[0x00], 0x63);
  EXPECT_EQ(tab.sbox[0x01], 0x7c);
  EXPECT_EQ(tab.sbox[0x53], 0xed);
  EXPECT_EQ(tab.sbox[0xff], 0x16);
  // FIPS-197 appendix C.1 (AES-128).
  uint8_t key[16], pt[16];
  for (int i = 0; i < 16; ++i) {
    key[i] = static_cast<uint8_t>(i);
    pt[i] = static_cast<uint8_t>(0x11 * i);
  }
  uint32_t rk[44], in[4], out[4];
  cd::aes128_expand_key(key, rk);
  for (int i = 0; i < 4; ++i) in[i] = cd::load_be32(pt + 4 * i);
  cd::aes128_encrypt(rk, tab.te0, tab.sbox, in, out);
  EXPECT_EQ(out[0], 0x69c4e0d8u);
  EXPECT_EQ(out[1], 0x6a7b0430u);
  EXPECT_EQ(out[2], 0xd8cdb780u);
  EXPECT_EQ(out[3], 0x70b4c55au);
  // Keystream words of rows (including counters that carry across 64 bits) vs OpenSSL CTR.
  for (uint8_t base : {3, 200}) {
    fhe::Seed seed = test_seed(base);
    if (base == 200) {
      for (int i = 16; i < 32; ++i) seed[i] = 0xff;  // the counter wraps inside the rows
    }
    cd::SeedKey sk{};
    cd::make_seed_key(seed.data(), sk);
    for (uint64_t row : {uint64_t{0}, uint64_t{1}, uint64_t{77777}, uint64_t{1} << 33}) {
      uint8_t counter[16];
      std::memcpy(counter, seed.data() + 16, 16);
      uint64_t add = row << 32;
      unsigned carry = 0;
      for (int i = 15; i >= 0; --i) {
        const unsigned v = counter[i] + static_cast<unsigned>(add & 0xff) + carry;
        counter[i] = static_cast<uint8_t>(v);
        carry = v >> 8;
        add >>= 8;
      }
      fhe::AesCtr ctr;
      ctr.reset(seed.data(), counter);
      std::vector<uint8_t> ks(48 * 5);
      ctr.keystream(ks.data(), ks.size());
      for (uint64_t g = 0; g < 5; ++g) {
        uint64_t w[8];
        cd::keystream_words8(sk.rk, tab.te0, tab.sbox, sk.base_hi, sk.base_lo, row, g, w);
        for (int m = 0; m < 8; ++m) {
          uint64_t expect = 0;
          for (int i = 0; i < 6; ++i) expect |= uint64_t{ks[48 * g + 6 * m + i]} << (8 * i);
          ASSERT_EQ(w[m], expect) << "row " << row << " word " << 8 * g + m;
        }
      }
    }
  }
}

TEST(CudaKernelMath, RowExpansionMatchesSeedExpanderWithAndWithoutRejections) {
  const size_t n = 2048;
  std::vector<uint64_t> got(n), want(n);
  // The real q (rejections essentially never happen), then moduli that reject 1/256 and 1/64 of
  // the words (the spare words absorb them), then one that rejects half (rows run out).
  const uint64_t real_q = ctx()->q();
  const uint64_t qs[] = {real_q, (uint64_t{1} << 48) - (uint64_t{1} << 40),
                         (uint64_t{1} << 48) - (uint64_t{1} << 42), uint64_t{1} << 47};
  for (uint64_t q : qs) {
    fhe::SeedExpander ex(test_seed(9), n, q);
    size_t ran_out = 0, rejected_rows = 0;
    for (uint64_t row = 0; row < 24; ++row) {
      ex.expand_row(row, want.data());
      if (!host_expand_row(test_seed(9), n, q, row, got.data())) {
        ++ran_out;
        continue;
      }
      ASSERT_EQ(got, want) << "q " << q << " row " << row;
      // Did this row need compaction? (a word >= q among the first n)
      uint64_t w[8];
      cd::SeedKey sk{};
      cd::make_seed_key(test_seed(9).data(), sk);
      const AesTables tab;
      bool rejected = false;
      for (uint64_t g = 0; g < n / 8 && !rejected; ++g) {
        cd::keystream_words8(sk.rk, tab.te0, tab.sbox, sk.base_hi, sk.base_lo, row, g, w);
        for (uint64_t v : w) rejected |= v >= q;
      }
      rejected_rows += rejected;
    }
    if (q == real_q) {
      EXPECT_EQ(ran_out, 0u);
    }
    if (q == (uint64_t{1} << 47)) {
      EXPECT_EQ(ran_out, 24u);
    }
    if (q == (uint64_t{1} << 48) - (uint64_t{1} << 40)) {
      EXPECT_EQ(ran_out, 0u);
      EXPECT_EQ(rejected_rows, 24u);  // ~8 rejections per row, all compacted
    }
  }
}

TEST(CudaKernelMath, SignedDigitsCoverEveryCoefficientExactly) {
  const uint64_t q = ctx()->q();
  std::vector<uint64_t> cs = {0,
                              1,
                              cd::kDigitMaxPositive - 1,
                              cd::kDigitMaxPositive,
                              cd::kDigitMaxPositive + 1,
                              (q - 1) / 2,
                              (q + 1) / 2,
                              q - 2,
                              q - 1};
  fhe::SeedExpander ex(test_seed(4), 2048, q);
  std::vector<uint64_t> row(2048);
  ex.expand_row(0, row.data());
  cs.insert(cs.end(), row.begin(), row.end());
  for (uint64_t c : cs) {
    const uint64_t u = cd::offset_digits(c, q);
    ASSERT_LT(u, uint64_t{1} << 48) << c;
    fhe::i128 v = 0;
    for (int k = cd::kPlanes - 1; k >= 0; --k) {
      const int d = cd::digit(u, k);
      ASSERT_GE(d, -128);
      ASSERT_LE(d, 127);
      v = v * 256 + d;
    }
    fhe::i128 r = v % static_cast<fhe::i128>(q);
    if (r < 0) r += q;
    ASSERT_EQ(static_cast<uint64_t>(r), c);
    // The representative lies in the digits' range [-128 S, 127 S] (the centred one, shifted
    // by at most S / 2 near q / 2).
    ASSERT_GE(v, -static_cast<fhe::i128>(cd::kDigitOffset)) << c;
    ASSERT_LE(v, static_cast<fhe::i128>(cd::kDigitMaxPositive)) << c;
  }
}

TEST(CudaKernelMath, RecombinationIsExactAtTheExtremes) {
  const uint64_t q = ctx()->q();
  const int32_t lim = static_cast<int32_t>(cd::kMaxInnerDim * 128 * 128);
  const int32_t vals[] = {0, 1, -1, 255, -256, lim, -lim, 123456789, -987654321};
  for (int32_t a : vals) {
    for (int32_t b : vals) {
      for (int mix = 0; mix < 4; ++mix) {
        int32_t p[cd::kPlanes];
        for (int k = 0; k < cd::kPlanes; ++k) p[k] = ((k + mix) % 2) ? a : b;
        fhe::i128 v = 0;
        for (int k = cd::kPlanes - 1; k >= 0; --k) v = v * 256 + p[k];
        fhe::i128 r = v % static_cast<fhe::i128>(q);
        if (r < 0) r += q;
        ASSERT_EQ(cd::recombine(p, q), static_cast<uint64_t>(r)) << a << " " << b << " " << mix;
      }
    }
  }
}

// The whole pipeline of the kernels on the host (split, int32 plane sums, recombination) for a
// small product, against reference_multiply: checks the digit layout math end to end.
TEST(CudaKernelMath, HostPipelineMatchesTheReference) {
  const size_t d_out = 5, d_in = 9, t = 70;
  auto w = random_int8(d_out * d_in, 61);
  for (auto& v : std::vector<size_t>{0, 1, 2}) w[v] = -128;
  auto x = random_int8(d_in * t, 62);
  const auto key = fhe::SecretKey::generate(ctx());
  fhe::Encryptor enc(key);
  const auto ct = enc.encrypt(x.data(), d_in, t, fhe::worst_case_bounds(d_in));
  const auto ref = fhe::reference_multiply(*ctx(), w.data(), d_out, d_in, false, ct);
  const size_t n = ctx()->n();
  const uint64_t q = ctx()->q();
  std::vector<uint64_t> a_hat(d_in * n);
  for (size_t j = 0; j < d_in; ++j) ASSERT_TRUE(host_expand_row(ct.seed, n, q, j, &a_hat[j * n]));
  for (int source = 0; source < 2; ++source) {
    const uint64_t* c = source ? a_hat.data() : ct.c0.data();
    const auto& want = source ? ref.c1 : ref.c0;
    for (size_t i = 0; i < d_out; ++i) {
      for (size_t tok = 0; tok < n; ++tok) {
        int32_t p[cd::kPlanes] = {};
        for (size_t j = 0; j < d_in; ++j) {
          const uint64_t u = cd::offset_digits(c[j * n + tok], q);
          for (int k = 0; k < cd::kPlanes; ++k) p[k] += w[i * d_in + j] * cd::digit(u, k);
        }
        ASSERT_EQ(cd::recombine(p, q), want[i * n + tok]) << source << " " << i << " " << tok;
      }
    }
  }
}

// The 48-bit transfer format: bulk pack/unpack (pack48.h) against the per-coefficient
// store48/load48 of the kernels, exact buffer sizes (ASan catches an overrun), range checks.
TEST(CudaKernelMath, Pack48RoundTripsAndChecksTheBound) {
  const uint64_t q = ctx()->q();
  const uint64_t top = (uint64_t{1} << 48) - 1;
  for (size_t count : {size_t{0}, size_t{1}, size_t{2}, size_t{3}, size_t{7}, size_t{4097}}) {
    std::vector<uint64_t> v(count);
    for (size_t k = 0; k < count; ++k) v[k] = (k * 0x9e3779b97f4a7c15ull) % q;
    if (count > 0) v[0] = q - 1;
    if (count > 1) v[count - 1] = 0;
    if (count > 2) v[count / 2] = 1;
    // One guard byte past the packed bytes must stay untouched.
    std::vector<uint8_t> packed(cd::kPackedBytes * count + 1, 0xa5);
    ASSERT_TRUE(cd::pack48(v.data(), count, q, packed.data())) << count;
    EXPECT_EQ(packed.back(), 0xa5) << count;
    for (size_t k = 0; k < count; ++k) {
      uint8_t want[cd::kPackedBytes];
      cd::store48(v[k], want);
      ASSERT_EQ(std::memcmp(want, packed.data() + cd::kPackedBytes * k, cd::kPackedBytes), 0) << k;
      ASSERT_EQ(cd::load48(packed.data() + cd::kPackedBytes * k), v[k]) << k;
    }
    std::vector<uint8_t> exact(packed.begin(), packed.end() - 1);  // no slack to over-read
    std::vector<uint64_t> back(count + 1, 77);
    cd::unpack48(exact.data(), count, back.data());
    EXPECT_EQ(back.back(), 77u) << count;
    back.pop_back();
    EXPECT_EQ(back, v) << count;
    // A coefficient >= the bound anywhere is reported; the full 48-bit range passes 2^48.
    for (size_t at : {size_t{0}, count / 2, count - 1}) {
      if (count == 0) break;
      auto bad = v;
      bad[at] = q;
      EXPECT_FALSE(cd::pack48(bad.data(), count, q, packed.data())) << count << " at " << at;
      bad[at] = top;
      EXPECT_FALSE(cd::pack48(bad.data(), count, q, packed.data())) << count << " at " << at;
      ASSERT_TRUE(cd::pack48(bad.data(), count, top + 1, packed.data()));
      cd::unpack48(packed.data(), count, back.data());
      EXPECT_EQ(back, bad) << count << " at " << at;
    }
  }
}

// ---- device tests ----------------------------------------------------------------------------

void expect_same(const fhe::CiphertextMatrix& a, const fhe::CiphertextMatrix& b,
                 const std::string& what) {
  EXPECT_EQ(a.kind, b.kind) << what;
  EXPECT_EQ(a.rows, b.rows) << what;
  EXPECT_EQ(a.cols, b.cols) << what;
  EXPECT_EQ(a.log2_delta, b.log2_delta) << what;
  EXPECT_EQ(a.seed, b.seed) << what;
  ASSERT_EQ(a.c0.size(), b.c0.size()) << what;
  ASSERT_EQ(a.c1.size(), b.c1.size()) << what;
  size_t bad0 = 0, bad1 = 0;
  for (size_t k = 0; k < a.c0.size(); ++k) bad0 += a.c0[k] != b.c0[k];
  for (size_t k = 0; k < a.c1.size(); ++k) bad1 += a.c1[k] != b.c1[k];
  EXPECT_EQ(bad0, 0u) << what << ": c0 words differ";
  EXPECT_EQ(bad1, 0u) << what << ": c1 words differ";
}

struct Shape {
  size_t d_out, d_in, t;
  bool transpose;
  bool with_reference;  // also against the (slow) scalar reference
};

TEST(CudaPlaneGemm, ProductsAreBitIdenticalToTheCpu) {
  REQUIRE_GPU();
  const Shape shapes[] = {
      {16, 24, 100, false, true},    {33, 17, 2053, false, true},    {40, 70, 3000, true, true},
      {7, 5, 1, true, true},         {3, 2048, 2048, false, true},   {256, 512, 4097, false, false},
      {300, 200, 6000, true, false}, {4096, 64, 5000, false, false},  // several groups
  };
  const auto key = fhe::SecretKey::generate(ctx());
  fhe::Encryptor enc(key);
  fhe::Decryptor dec(key);
  for (const Shape& s : shapes) {
    const std::string what = std::to_string(s.d_out) + "x" + std::to_string(s.d_in) +
                             " T=" + std::to_string(s.t) + (s.transpose ? " transposed" : "");
    auto w = random_int8(s.d_out * s.d_in, s.d_out * 7 + s.d_in);
    const size_t in = s.transpose ? s.d_out : s.d_in;
    auto x = random_int8(in * s.t, s.t);
    for (size_t j = 0; j < in; ++j) x[j * s.t] = -128;  // extreme first token
    fhe::CudaPlaneGemm gpu(ctx(), w.data(), s.d_out, s.d_in, s.transpose);
    fhe::PlaneGemm cpu(ctx(), w.data(), s.d_out, s.d_in, s.transpose);
    EXPECT_EQ(gpu.in_dim(), cpu.in_dim());
    EXPECT_EQ(gpu.out_dim(), cpu.out_dim());
    EXPECT_EQ(gpu.bounds().max_row_l1, cpu.bounds().max_row_l1);
    const auto ct = enc.encrypt(x.data(), in, s.t, gpu.bounds(), gpu.out_dim() * s.t);
    const auto got = gpu.multiply(ct);
    expect_same(got, cpu.multiply(ct), what + " vs PlaneGemm");
    if (s.with_reference) {
      expect_same(got, fhe::reference_multiply(*ctx(), w.data(), s.d_out, s.d_in, s.transpose, ct),
                  what + " vs reference");
    }
    EXPECT_EQ(dec.decrypt(got), plain_product(w, s.d_out, s.d_in, s.transpose, x, s.t)) << what;
    EXPECT_GT(gpu.last_timing().gemm_s, 0.0) << what;
  }
}

TEST(CudaPlaneGemm, ReusesBuffersAcrossShapesAndThreads) {
  REQUIRE_GPU();
  const size_t d_out = 48, d_in = 96;
  auto w = random_int8(d_out * d_in, 71);
  const auto key = fhe::SecretKey::generate(ctx());
  fhe::Encryptor enc(key);
  fhe::CudaPlaneGemm gpu(ctx(), w.data(), d_out, d_in, false);
  fhe::PlaneGemm cpu(ctx(), w.data(), d_out, d_in, false);
  fhe::CiphertextMatrix out;
  for (size_t t : {5000, 10, 2048, 4100}) {
    auto x = random_int8(d_in * t, 72 + t);
    const auto ct = enc.encrypt(x.data(), d_in, t, gpu.bounds(), d_out * t);
    gpu.multiply_into(ct, out);
    expect_same(out, cpu.multiply(ct), "T=" + std::to_string(t));
  }
  // Concurrent calls on one object are serialised and stay exact.
  std::vector<fhe::CiphertextMatrix> cts, want(4), got(4);
  for (int k = 0; k < 4; ++k) {
    auto x = random_int8(d_in * 3000, 80 + k);
    cts.push_back(enc.encrypt(x.data(), d_in, 3000, gpu.bounds(), d_out * 3000));
    want[k] = cpu.multiply(cts.back());
  }
  std::vector<std::thread> threads;
  for (int k = 0; k < 4; ++k) threads.emplace_back([&, k] { got[k] = gpu.multiply(cts[k]); });
  for (auto& th : threads) th.join();
  for (int k = 0; k < 4; ++k) expect_same(got[k], want[k], "thread " + std::to_string(k));
}

// A bad coefficient found while packing a later group leaves the object usable, and inputs of
// several groups (alternating staging slots) stay exact with reused buffers.
TEST(CudaPlaneGemm, RangeErrorsMidPipelineLeaveTheObjectUsable) {
  REQUIRE_GPU();
  const size_t d_out = 4096, d_in = 64, t = 3 * 2048 + 5;  // two groups of blocks
  auto w = random_int8(d_out * d_in, 201);
  auto x = random_int8(d_in * t, 202);
  const auto key = fhe::SecretKey::generate(ctx());
  fhe::Encryptor enc(key);
  fhe::CudaPlaneGemm gpu(ctx(), w.data(), d_out, d_in, false);
  fhe::PlaneGemm cpu(ctx(), w.data(), d_out, d_in, false);
  const auto ct = enc.encrypt(x.data(), d_in, t, gpu.bounds(), d_out * t);
  const auto want = cpu.multiply(ct);
  fhe::CiphertextMatrix out;
  for (size_t at : {ct.c0.size() - 1, ct.c0.size() / 2, size_t{0}}) {
    auto bad = ct;
    bad.c0[at] = ctx()->q() + at;
    EXPECT_THROW(gpu.multiply_into(bad, out), fhe::FheError) << at;
    gpu.multiply_into(ct, out);
    expect_same(out, want, "after a range error at " + std::to_string(at));
  }
  const auto timing = gpu.last_timing();
  EXPECT_GT(timing.upload_s, 0.0);
  EXPECT_GT(timing.download_s, 0.0);
  EXPECT_EQ(fhe::Decryptor(key).decrypt(out), plain_product(w, d_out, d_in, false, x, t));
}

TEST(CudaPlaneGemm, SwitchedRepliesDecryptExactly) {
  REQUIRE_GPU();
  const size_t d_out = 64, d_in = 128, t = 300;
  auto w = random_int8(d_out * d_in, 91);
  auto x = random_int8(d_in * t, 92);
  const auto key = fhe::SecretKey::generate(ctx());
  fhe::Encryptor enc(key);
  fhe::CudaPlaneGemm gpu(ctx(), w.data(), d_out, d_in, false);
  auto prod = gpu.multiply(enc.encrypt(x.data(), d_in, t, gpu.bounds(), d_out * t));
  const uint32_t bits = gpu.switch_reply(prod);
  ASSERT_GT(bits, 0u);
  EXPECT_EQ(prod.kind, fhe::CtKind::kSwitched);
  EXPECT_EQ(fhe::Decryptor(key).decrypt(prod), plain_product(w, d_out, d_in, false, x, t));
}

TEST(CudaSeedExpansion, MatchesSeedExpanderIncludingRejectionsAndFallback) {
  REQUIRE_GPU();
  const size_t n = 2048, rows = 300;
  const uint64_t row0 = 12345;
  const uint64_t qs[] = {ctx()->q(), (uint64_t{1} << 48) - (uint64_t{1} << 40),
                         (uint64_t{1} << 48) - (uint64_t{1} << 42), uint64_t{1} << 47};
  std::vector<uint64_t> got(rows * n), want(n);
  for (uint64_t q : qs) {
    const auto seed = test_seed(static_cast<uint8_t>(q & 0xff));
    fhe::cuda_expand_seed_rows(seed, n, q, row0, rows, got.data());
    fhe::SeedExpander ex(seed, n, q);
    for (size_t r = 0; r < rows; ++r) {
      ex.expand_row(row0 + r, want.data());
      ASSERT_TRUE(std::equal(want.begin(), want.end(), got.begin() + r * n))
          << "q " << q << " row " << row0 + r;
    }
  }
}

TEST(CudaPlaneGemm, RefusesBadInput) {
  REQUIRE_GPU();
  auto w = random_int8(8 * 16, 51);
  auto x = random_int8(16 * 5, 52);
  const auto key = fhe::SecretKey::generate(ctx());
  fhe::Encryptor enc(key);
  fhe::CudaPlaneGemm g(ctx(), w.data(), 8, 16, false);
  auto ct = enc.encrypt(x.data(), 16, 5, fhe::worst_case_bounds(16));
  EXPECT_NO_THROW(g.multiply(ct));
  fhe::CudaPlaneGemm gt(ctx(), w.data(), 8, 16, true);  // expects 8 rows
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
  const auto prod = g.multiply(ct);
  EXPECT_THROW(g.multiply(prod), fhe::FheError);  // not a fresh ciphertext
  // A scale far too small for the noise of this matrix.
  EXPECT_THROW(g.multiply(enc.encrypt(x.data(), 16, 5, 6)), fhe::FheError);
  EXPECT_THROW(fhe::CudaPlaneGemm(ctx(), w.data(), 0, 16, false), fhe::FheError);
  EXPECT_THROW(fhe::CudaPlaneGemm(ctx(), w.data(), 8, 16, false, -1), fhe::FheError);
  std::vector<int8_t> huge(140000);
  EXPECT_THROW(fhe::CudaPlaneGemm(ctx(), huge.data(), 1, 140000, false), fhe::FheError);
  std::vector<uint64_t> out(8);
  EXPECT_THROW(fhe::cuda_expand_seed_rows(test_seed(1), 12, ctx()->q(), 0, 1, out.data()),
               fhe::FheError);
}

TEST(CudaPlainGemm, Int8AndFp32BaselinesComputeThePlainProduct) {
  REQUIRE_GPU();
  const size_t d_out = 37, d_in = 50, t = 23;  // odd sizes: padded inside
  auto w = random_int8(d_out * d_in, 95);
  auto x = random_int8(d_in * t, 96);
  std::vector<int8_t> xt(t * d_in);
  for (size_t j = 0; j < d_in; ++j)
    for (size_t c = 0; c < t; ++c) xt[c * d_in + j] = x[j * t + c];
  const auto want = plain_product(w, d_out, d_in, false, x, t);
  for (auto type : {fhe::CudaPlainGemm::Type::kInt8, fhe::CudaPlainGemm::Type::kFp32}) {
    fhe::CudaPlainGemm g(type, w.data(), d_out, d_in, t);
    g.upload(xt.data());
    g.run();
    std::vector<int32_t> y(d_out * t);
    g.download(y.data());
    EXPECT_EQ(std::vector<int64_t>(y.begin(), y.end()), want);
  }
}

// The CUDA evaluator (fhe/cuda_evaluator.h) behind the interface: the CPU evaluator's products
// word for word; dense weights only, no stacked parts; without a GPU it refuses to construct.
TEST(CudaEvaluator, EqualsTheCpuEvaluatorThroughTheInterface) {
  const size_t d_out = 24, d_in = 40, t = 2100;
  auto w = random_int8(d_out * d_in, 77);
  const fhe::ProductSpec spec{.w = w.data(), .d_out = d_out, .d_in = d_in};
  if (fhe::cuda_device_count() == 0) {
    EXPECT_THROW(fhe::make_cuda_evaluator(ctx(), spec), fhe::FheError);
    EXPECT_THROW(fhe::cuda_evaluator_factory(0)(ctx(), spec), fhe::FheError);
    GTEST_SKIP() << "no CUDA device available";
  }
  fhe::ProductSpec strided = spec;
  strided.stride = d_in + 1;
  EXPECT_THROW(fhe::make_cuda_evaluator(ctx(), strided), fhe::FheError);
  const auto key = fhe::SecretKey::generate(ctx());
  for (const bool transpose : {false, true}) {
    fhe::ProductSpec s = spec;
    s.transpose = transpose;
    const auto gpu = fhe::cuda_evaluator_factory(0)(ctx(), s);
    const auto cpu = fhe::make_cpu_evaluator(ctx(), s);
    EXPECT_FALSE(gpu->stacks());
    ASSERT_EQ(gpu->in_dim(), cpu->in_dim());
    const auto x = random_int8(gpu->in_dim() * t, 78 + transpose);
    const auto ct =
        fhe::Encryptor(key).encrypt(x.data(), gpu->in_dim(), t, gpu->bounds(), gpu->out_dim() * t);
    auto got = gpu->multiply(ct);
    auto want = cpu->multiply(ct);
    expect_same(got, want, transpose ? "transposed" : "forward");
    EXPECT_EQ(gpu->switch_reply(got), cpu->switch_reply(want));
    EXPECT_EQ(got.c0, want.c0);
    EXPECT_EQ(got.c1, want.c1);
    fhe::CiphertextMatrix part;
    EXPECT_THROW(gpu->multiply_rows_into(ct, 0, part), fhe::FheError);
  }
}

}  // namespace
