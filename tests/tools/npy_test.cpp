#include "common/npy.h"

#include <gtest/gtest.h>

#include <cstring>
#include <fstream>

#include "test_support/files.h"
#include "test_support/run.h"
#include "test_support/temp_dir.h"

namespace {

using test_support::TempDir;

TEST(Npy, RoundTripsEachDtype) {
  TempDir dir;
  const std::vector<int8_t> a = {-128, 127, 0, 5, -7, 9};
  fedtools::write_npy(dir / "a.npy", fedtools::NpyType::kInt8, 2, 3, a.data());
  size_t r = 0, c = 0;
  EXPECT_EQ(fedtools::read_npy_int8(dir / "a.npy", &r, &c), a);
  EXPECT_EQ(r, 2u);
  EXPECT_EQ(c, 3u);
  const std::vector<int64_t> b = {int64_t{1} << 40, -3, 7};
  fedtools::write_npy(dir / "b.npy", fedtools::NpyType::kInt64, 3, 1, b.data());
  const auto nb = fedtools::read_npy(dir / "b.npy");
  EXPECT_EQ(nb.type, fedtools::NpyType::kInt64);
  EXPECT_EQ(nb.rows, 3u);
  EXPECT_EQ(std::memcmp(nb.data.data(), b.data(), 24), 0);
  // The header is padded so the data starts at a multiple of 64, as NumPy does.
  EXPECT_EQ((test_support::slurp(dir / "b.npy").size() - 24) % 64, 0u);
}

TEST(Npy, ReadsHeadersAsNumpyWritesThem) {
  TempDir dir;
  // Exactly the bytes numpy.save writes for np.array([[1, -2]], dtype=np.int8) (format 1.0).
  std::string header = "{'descr': '|i1', 'fortran_order': False, 'shape': (1, 2), }";
  header.append((64 - (10 + header.size() + 1) % 64) % 64, ' ');
  header += '\n';
  std::string file = std::string("\x93NUMPY\x01\x00", 8);
  file += static_cast<char>(header.size());
  file += '\0';
  file += header;
  file += std::string("\x01\xfe", 2);
  std::ofstream(dir / "n.npy", std::ios::binary) << file;
  size_t r = 0, c = 0;
  const auto v = fedtools::read_npy_int8(dir / "n.npy", &r, &c);
  EXPECT_EQ(r, 1u);
  EXPECT_EQ(c, 2u);
  EXPECT_EQ(v, (std::vector<int8_t>{1, -2}));
}

TEST(Npy, RefusesMalformedFiles) {
  TempDir dir;
  const std::vector<int8_t> a(12, 1);
  fedtools::write_npy(dir / "ok.npy", fedtools::NpyType::kInt8, 3, 4, a.data());
  const std::string good = test_support::slurp(dir / "ok.npy");
  auto write = [&](const std::string& name, const std::string& bytes) {
    std::ofstream(dir / name, std::ios::binary) << bytes;
    return dir / name;
  };
  size_t r, c;
  // Truncated anywhere: header or data.
  for (size_t cut : {size_t{0}, size_t{5}, size_t{9}, size_t{30}, good.size() - 1}) {
    EXPECT_THROW(fedtools::read_npy_int8(write("t.npy", good.substr(0, cut)), &r, &c),
                 fedtools::NpyError)
        << "cut at " << cut;
  }
  EXPECT_THROW(fedtools::read_npy_int8(write("x.npy", good + "x"), &r, &c), fedtools::NpyError);
  std::string bad = good;
  bad[1] = 'X';
  EXPECT_THROW(fedtools::read_npy_int8(write("m.npy", bad), &r, &c), fedtools::NpyError);
  bad = good;
  bad.replace(bad.find("|i1"), 3, "<f8");
  EXPECT_THROW(fedtools::read_npy_int8(write("d.npy", bad), &r, &c), fedtools::NpyError);
  bad = good;
  bad.replace(bad.find("False"), 5, "True ");
  EXPECT_THROW(fedtools::read_npy_int8(write("f.npy", bad), &r, &c), fedtools::NpyError);
  bad = good;
  bad.replace(bad.find("(3, 4)"), 6, "(3, x)");
  EXPECT_THROW(fedtools::read_npy_int8(write("s.npy", bad), &r, &c), fedtools::NpyError);
  bad = good;
  bad.replace(bad.find("(3, 4)"), 6, "(3,4,1)");
  EXPECT_THROW(fedtools::read_npy_int8(write("s3.npy", bad), &r, &c), fedtools::NpyError);
  bad = good;
  bad.replace(bad.find("(3, 4)"), 6, "(9999999999999, 99999999)");
  EXPECT_THROW(fedtools::read_npy_int8(write("big.npy", bad), &r, &c), fedtools::NpyError);
  EXPECT_THROW(fedtools::read_npy_int8(dir / "missing.npy", &r, &c), fedtools::NpyError);
}

// A .npy file whose header dictionary is padded with spaces to `header_len` bytes (format 1.0
// when it fits 16 bits, 2.0 otherwise; `declared` overrides the length field).
std::string padded_npy(size_t header_len, size_t declared = 0) {
  std::string header = "{'descr': '|i1', 'fortran_order': False, 'shape': (1, 2), }";
  header.append(header_len - header.size() - 1, ' ');
  header += '\n';
  const size_t len = declared ? declared : header.size();
  std::string file =
      len < 65536 ? std::string("\x93NUMPY\x01\x00", 8) : std::string("\x93NUMPY\x02\x00", 8);
  file += static_cast<char>(len & 0xff);
  file += static_cast<char>((len >> 8) & 0xff);
  if (len >= 65536) {
    file += static_cast<char>((len >> 16) & 0xff);
    file += static_cast<char>((len >> 24) & 0xff);
  }
  return file + header + std::string("\x01\xfe", 2);
}

// A 65 KB header used to crash the reader (a backtracking regex recursed once per character):
// now any header over kMaxHeaderBytes is refused with a message naming the limit, and one at the
// limit is read.
TEST(Npy, BoundsTheHeaderLength) {
  TempDir dir;
  std::ofstream(dir / "at.npy", std::ios::binary) << padded_npy(fedtools::kMaxHeaderBytes);
  size_t r = 0, c = 0;
  EXPECT_EQ(fedtools::read_npy_int8(dir / "at.npy", &r, &c), (std::vector<int8_t>{1, -2}));
  for (const size_t len : {fedtools::kMaxHeaderBytes + 1, size_t{65535}}) {
    std::ofstream(dir / "big.npy", std::ios::binary) << padded_npy(len);
    try {
      fedtools::read_npy_int8(dir / "big.npy", &r, &c);
      ADD_FAILURE() << "a header of " << len << " bytes was accepted";
    } catch (const fedtools::NpyError& e) {
      EXPECT_NE(std::string(e.what()).find("exceeds the 10000-byte limit"), std::string::npos)
          << e.what();
    }
  }
  // Format 2.0 declares a 32-bit length: 4 GiB - 1 is refused before anything is allocated.
  std::ofstream(dir / "v2.npy", std::ios::binary) << padded_npy(128, 0xffffffffu);
  EXPECT_THROW(fedtools::read_npy_int8(dir / "v2.npy", &r, &c), fedtools::NpyError);
}

// fedctl on such a file: one line on stderr and exit status 2, as for any bad input.
TEST(Npy, FedctlRefusesAHugeHeaderWithExitStatus2) {
  TempDir dir;
  std::ofstream(dir / "x.npy", std::ios::binary) << padded_npy(65535);
  ASSERT_EQ(test_support::run(std::string(FEDCTL_PATH) + " fhe-keygen --out " + dir / "sk").status,
            0);
  const auto r = test_support::run(std::string(FEDCTL_PATH) + " fhe-encrypt --key " + dir / "sk" +
                                   " --in " + dir / "x.npy" + " --out " + dir / "x.ct");
  EXPECT_EQ(r.status, 2) << r.err;
  EXPECT_TRUE(r.err.starts_with("fedctl fhe-encrypt: ")) << r.err;
  EXPECT_NE(r.err.find("exceeds the 10000-byte limit"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find('\n'), r.err.size() - 1) << r.err;
}

}  // namespace
