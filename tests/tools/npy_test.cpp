#include "common/npy.h"

#include <gtest/gtest.h>

#include <cstring>
#include <fstream>

#include "run_util.h"

namespace {

using tools_test::TempDir;

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
  EXPECT_EQ((tools_test::slurp(dir / "b.npy").size() - 24) % 64, 0u);
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
  const std::string good = tools_test::slurp(dir / "ok.npy");
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

}  // namespace
