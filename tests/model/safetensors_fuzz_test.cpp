// Damaged safetensors files: truncations and corrupted headers must always end in a
// model::ModelError (or, for a corruption that happens to stay valid, a clean read), never in a
// crash, an out-of-bounds read (run under the asan preset) or another exception type.
#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "model/error.h"
#include "model/safetensors_reader.h"
#include "model/safetensors_writer.h"
#include "test_util.h"

namespace {

using model::DType;
using model_test::TempDir;

// A valid file with every readable dtype, a scalar and a few KiB of data.
std::string make_valid_file(const TempDir& dir) {
  std::vector<float> big(1000), small = {1, 2, 3, 4, 5, 6}, scalar = {42};
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<float>(i) * 0.25f - 100;
  const model::TensorToWrite tensors[] = {
      {"model.layers.0.mlp.up_proj.weight", DType::kF32, {10, 100}, big},
      {"model.layers.0.input_layernorm.weight", DType::kF16, {6}, small},
      {"model.norm.weight", DType::kBF16, {2, 3}, small},
      {"scale", DType::kF32, {}, scalar},
  };
  model::write_safetensors(dir / "valid.safetensors", tensors, {{"format", "pt"}});
  return test_support::slurp(dir / "valid.safetensors");
}

uint64_t header_length(const std::string& bytes) {
  uint64_t n;
  std::memcpy(&n, bytes.data(), 8);
  return n;
}

enum class Outcome { kOpenedAndRead, kModelError };

// Opens the bytes as a file and reads every float tensor. Any exception other than
// model::ModelError fails the test.
Outcome open_and_read(const TempDir& dir, const std::string& bytes) {
  const auto path = dir / "fuzz.safetensors";
  test_support::write_file(path, bytes);
  try {
    model::SafetensorsReader reader(path);
    for (const auto& t : reader.tensors()) {
      if (!model::is_float_dtype(t.dtype)) continue;
      std::vector<float> out(static_cast<size_t>(t.numel()));
      reader.read_f32(t, out);
    }
    return Outcome::kOpenedAndRead;
  } catch (const model::ModelError& e) {
    EXPECT_NE(std::string(e.what()).find("fuzz.safetensors"), std::string::npos) << e.what();
    return Outcome::kModelError;
  }
}

TEST(SafetensorsFuzz, ValidFileReadsBack) {
  TempDir dir;
  const std::string bytes = make_valid_file(dir);
  EXPECT_EQ(open_and_read(dir, bytes), Outcome::kOpenedAndRead);
}

TEST(SafetensorsFuzz, TruncationAtEveryHeaderByteFails) {
  TempDir dir;
  const std::string bytes = make_valid_file(dir);
  const size_t header_end = 8 + header_length(bytes);
  for (size_t len = 0; len <= header_end; ++len) {
    ASSERT_EQ(open_and_read(dir, bytes.substr(0, len)), Outcome::kModelError) << "length " << len;
  }
}

TEST(SafetensorsFuzz, TruncationInsideTheDataFails) {
  TempDir dir;
  const std::string bytes = make_valid_file(dir);
  const size_t header_end = 8 + header_length(bytes);
  ASSERT_GT(bytes.size(), header_end + 4000);
  std::mt19937_64 rng(1234);
  std::uniform_int_distribution<size_t> cut(header_end + 1, bytes.size() - 1);
  for (int i = 0; i < 200; ++i) {
    const size_t len = cut(rng);
    ASSERT_EQ(open_and_read(dir, bytes.substr(0, len)), Outcome::kModelError) << "length " << len;
  }
  EXPECT_EQ(open_and_read(dir, bytes.substr(0, bytes.size() - 1)), Outcome::kModelError);
}

TEST(SafetensorsFuzz, HeaderLengthPastTheEndFails) {
  TempDir dir;
  std::string bytes = make_valid_file(dir);
  for (uint64_t n :
       {uint64_t{bytes.size() - 7}, uint64_t{bytes.size()}, uint64_t{1} << 40, ~uint64_t{0}}) {
    std::string b = bytes;
    std::memcpy(b.data(), &n, 8);
    EXPECT_EQ(open_and_read(dir, b), Outcome::kModelError) << n;
  }
}

TEST(SafetensorsFuzz, CorruptedHeadersNeverCrash) {
  TempDir dir;
  const std::string bytes = make_valid_file(dir);
  const size_t header_end = 8 + header_length(bytes);
  const std::string structural = "{}[]\",:-0123456789e. \\";
  std::mt19937_64 rng(20240601);
  std::uniform_int_distribution<size_t> where(0, header_end - 1);
  std::uniform_int_distribution<int> byte(0, 255), count(1, 4), coin(0, 1);
  int errors = 0, opened = 0;
  for (int variant = 0; variant < 600; ++variant) {
    std::string b = bytes;
    const int n = count(rng);
    for (int k = 0; k < n; ++k) {
      const char c = coin(rng) ? static_cast<char>(byte(rng))
                               : structural[static_cast<size_t>(byte(rng)) % structural.size()];
      b[where(rng)] = c;
    }
    (open_and_read(dir, b) == Outcome::kModelError ? errors : opened) += 1;
  }
  // Most corruptions break the header; a few (a changed letter in a name) leave it valid.
  EXPECT_GT(errors, 400);
  EXPECT_EQ(errors + opened, 600);
}

TEST(SafetensorsFuzz, CorruptedNumbersInTheHeaderFail) {
  TempDir dir;
  const std::string bytes = make_valid_file(dir);
  const size_t header_end = 8 + header_length(bytes);
  // Every digit of a shape or of data_offsets (the digits inside [...]) changed: the shape and
  // the offsets then disagree, or an offset leaves the data area.
  int digits = 0;
  bool in_array = false;
  for (size_t i = 8; i < header_end; ++i) {
    if (bytes[i] == '[' || bytes[i] == ']') in_array = bytes[i] == '[';
    if (!in_array || bytes[i] < '0' || bytes[i] > '9') continue;
    ++digits;
    std::string b = bytes;
    b[i] = bytes[i] == '9' ? '8' : static_cast<char>(bytes[i] + 1);
    EXPECT_EQ(open_and_read(dir, b), Outcome::kModelError) << "digit at " << i;
  }
  EXPECT_GT(digits, 20);
}

}  // namespace
