// The fhe-* commands of fedctl as a user runs them: real files, real processes.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <fstream>
#include <random>

#include "common/npy.h"
#include "test_support/files.h"
#include "test_support/run.h"
#include "test_support/temp_dir.h"

namespace {

using test_support::run;
using test_support::slurp;
using test_support::TempDir;

const std::string kFedctl = FEDCTL_PATH;

std::vector<int8_t> random_int8(size_t n, uint64_t seed) {
  std::mt19937_64 g(seed);  // test data only
  std::vector<int8_t> v(n);
  for (auto& x : v) x = static_cast<int8_t>(static_cast<int>(g() % 256) - 128);
  return v;
}

bool one_line_error(const test_support::RunResult& r, const std::string& needle) {
  const auto nl = r.err.find('\n');
  return r.status == 2 && nl != std::string::npos && nl + 1 == r.err.size() &&
         r.err.rfind("fedctl ", 0) == 0 && r.err.find(needle) != std::string::npos;
}

class FedctlFhe : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_EQ(run(kFedctl + " fhe-keygen --out " + dir / "sk").status, 0); }
  TempDir dir;
};

TEST_F(FedctlFhe, KeyFileIsPrivateAndNotOverwrittenByAccident) {
  struct stat st;
  ASSERT_EQ(::stat((dir / "sk").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  const auto before = slurp(dir / "sk");
  EXPECT_TRUE(one_line_error(run(kFedctl + " fhe-keygen --out " + dir / "sk"), "exists"));
  EXPECT_EQ(slurp(dir / "sk"), before);
  EXPECT_EQ(run(kFedctl + " fhe-keygen --force --out " + dir / "sk").status, 0);
  EXPECT_NE(slurp(dir / "sk"), before);
}

TEST_F(FedctlFhe, EncryptMatmulDecryptIsExactBothWays) {
  const size_t d_out = 9, d_in = 40, t = 2049;  // two ciphertext blocks
  const auto w = random_int8(d_out * d_in, 1);
  fedtools::write_npy(dir / "w.npy", fedtools::NpyType::kInt8, d_out, d_in, w.data());
  for (int variant = 0; variant < 3; ++variant) {
    const bool tr = variant == 1;
    const size_t in = tr ? d_out : d_in, out = tr ? d_in : d_out;
    const auto x = random_int8(in * t, 2 + tr);
    fedtools::write_npy(dir / "x.npy", fedtools::NpyType::kInt8, in, t, x.data());
    // variant 2: the worker modulus-switches its reply.
    const std::string flag = tr ? " --transpose" : (variant == 2 ? " --switch-modulus" : "");
    ASSERT_EQ(run(kFedctl + " fhe-encrypt --key " + dir / "sk" + " --in " + dir / "x.npy" +
                  " --out " + dir / "x.ct")
                  .status,
              0);
    ASSERT_EQ(run(kFedctl + " fhe-matmul --weights " + dir / "w.npy" + " --in " + dir / "x.ct" +
                  " --out " + dir / "y.ct" + flag)
                  .status,
              0);
    ASSERT_EQ(run(kFedctl + " fhe-decrypt --key " + dir / "sk" + " --in " + dir / "y.ct" +
                  " --out " + dir / "y.npy")
                  .status,
              0);
    const auto y = fedtools::read_npy(dir / "y.npy");
    ASSERT_EQ(y.type, fedtools::NpyType::kInt64);
    ASSERT_EQ(y.rows, out);
    ASSERT_EQ(y.cols, t);
    const auto* got = reinterpret_cast<const int64_t*>(y.data.data());
    size_t mismatches = 0;
    for (size_t i = 0; i < out; ++i) {
      for (size_t c = 0; c < t; ++c) {
        int64_t acc = 0;
        for (size_t j = 0; j < in; ++j) {
          acc += int64_t{tr ? w[j * d_in + i] : w[i * d_in + j]} * x[j * t + c];
        }
        mismatches += (got[i * t + c] != acc);
      }
    }
    EXPECT_EQ(mismatches, 0u) << "variant " << variant;
    if (variant == 2) {
      // 9 x 2049 values in two blocks of 2048 tokens: the switched reply is smaller than 12 B each.
      EXPECT_LT(slurp(dir / "y.ct").size(), 96 + 9 * 4096 * 12 * 80 / 100);
    }
  }
}

TEST_F(FedctlFhe, BadInputsGiveOneLineAndExitStatus2) {
  const auto w = random_int8(4 * 8, 3);
  const auto x = random_int8(8 * 5, 4);
  fedtools::write_npy(dir / "w.npy", fedtools::NpyType::kInt8, 4, 8, w.data());
  fedtools::write_npy(dir / "x.npy", fedtools::NpyType::kInt8, 8, 5, x.data());
  const std::vector<float> f(40, 1.0f);
  fedtools::write_npy(dir / "f.npy", fedtools::NpyType::kFloat32, 8, 5, f.data());
  const std::string sk = dir / "sk";
  auto enc = [&](const std::string& key, const std::string& in) {
    return run(kFedctl + " fhe-encrypt --key " + key + " --in " + in + " --out " + dir / "x.ct");
  };
  EXPECT_TRUE(one_line_error(enc(dir / "nokey", dir / "x.npy"), "nokey"));
  EXPECT_TRUE(one_line_error(enc(sk, dir / "f.npy"), "int8"));
  EXPECT_TRUE(one_line_error(enc(sk, dir / "absent.npy"), "absent.npy"));
  EXPECT_TRUE(one_line_error(run(kFedctl + " fhe-encrypt --in " + dir / "x.npy"), "key"));
  EXPECT_TRUE(one_line_error(run(kFedctl + " fhe-encrypt --bogus 1"), "bogus"));

  // A corrupt key (a coefficient outside {-1, 0, 1}) and a truncated key.
  std::string key = slurp(sk);
  std::string bad = key;
  bad[40] = 7;
  std::ofstream(dir / "badkey", std::ios::binary) << bad;
  EXPECT_TRUE(one_line_error(enc(dir / "badkey", dir / "x.npy"), "corrupt"));
  std::ofstream(dir / "shortkey", std::ios::binary) << key.substr(0, 100);
  EXPECT_TRUE(one_line_error(enc(dir / "shortkey", dir / "x.npy"), "truncated"));

  ASSERT_EQ(enc(sk, dir / "x.npy").status, 0);
  const std::string ct = slurp(dir / "x.ct");
  auto matmul = [&](const std::string& in, const std::string& extra = "") {
    return run(kFedctl + " fhe-matmul --weights " + dir / "w.npy" + " --in " + in + " --out " +
               dir / "y.ct" + extra);
  };
  // Truncated at several places, a flipped magic, a lying length, trailing bytes.
  for (size_t cut : {size_t{0}, size_t{10}, size_t{95}, size_t{96}, ct.size() / 2, ct.size() - 1}) {
    std::ofstream(dir / "cut.ct", std::ios::binary) << ct.substr(0, cut);
    EXPECT_TRUE(one_line_error(matmul(dir / "cut.ct"), "cut.ct")) << "cut at " << cut;
  }
  bad = ct;
  bad[0] = 'X';
  std::ofstream(dir / "magic.ct", std::ios::binary) << bad;
  EXPECT_TRUE(one_line_error(matmul(dir / "magic.ct"), "magic"));
  bad = ct;
  bad[32] = static_cast<char>(bad[32] + 1);  // rows field: shape no longer matches the payload
  std::ofstream(dir / "rows.ct", std::ios::binary) << bad;
  EXPECT_TRUE(one_line_error(matmul(dir / "rows.ct"), "payload"));
  std::ofstream(dir / "trail.ct", std::ios::binary) << ct + "zz";
  EXPECT_TRUE(one_line_error(matmul(dir / "trail.ct"), "trailing"));
  bad = ct;
  for (int i = 0; i < 6; ++i) bad[96 + i] = static_cast<char>(0xff);  // coefficient >= q
  std::ofstream(dir / "range.ct", std::ios::binary) << bad;
  EXPECT_TRUE(one_line_error(matmul(dir / "range.ct"), "range"));
  // Shape mismatch: W^T expects 4 rows, the ciphertext has 8.
  EXPECT_TRUE(one_line_error(matmul(dir / "x.ct", " --transpose"), "mismatch"));
  // A product is not an input of another product.
  ASSERT_EQ(matmul(dir / "x.ct").status, 0);
  fedtools::write_npy(dir / "w4.npy", fedtools::NpyType::kInt8, 4, 4, w.data());
  EXPECT_TRUE(one_line_error(run(kFedctl + " fhe-matmul --weights " + dir / "w4.npy" + " --in " +
                                 dir / "y.ct" + " --out " + dir / "z.ct"),
                             "fresh"));
  // Decrypting garbage.
  EXPECT_TRUE(one_line_error(run(kFedctl + " fhe-decrypt --key " + sk + " --in " + dir / "w.npy" +
                                 " --out " + dir / "o.npy"),
                             "ciphertext"));
  // Sanity: the good chain still decrypts.
  EXPECT_EQ(run(kFedctl + " fhe-decrypt --key " + sk + " --in " + dir / "y.ct" + " --out " +
                dir / "o.npy")
                .status,
            0);
}

TEST_F(FedctlFhe, EncryptRefusesAnInnerDimensionTheNoiseBoundCannotCarry) {
  const auto x = random_int8(9000 * 1, 5);
  fedtools::write_npy(dir / "x.npy", fedtools::NpyType::kInt8, 9000, 1, x.data());
  const auto r = run(kFedctl + " fhe-encrypt --key " + dir / "sk" + " --in " + dir / "x.npy" +
                     " --out " + dir / "x.ct");
  EXPECT_TRUE(one_line_error(r, "9000")) << r.err;
  // With the real (small) weights it meets, the same X can be encrypted.
  std::vector<int8_t> w(2 * 9000, 1);
  fedtools::write_npy(dir / "w.npy", fedtools::NpyType::kInt8, 2, 9000, w.data());
  EXPECT_EQ(run(kFedctl + " fhe-encrypt --key " + dir / "sk" + " --in " + dir / "x.npy" +
                " --weights " + dir / "w.npy" + " --out " + dir / "x.ct")
                .status,
            0);
}

}  // namespace
