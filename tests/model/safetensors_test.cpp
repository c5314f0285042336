#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>
#include <vector>

#include "base/testing/atomic_file_hook.h"
#include "model/error.h"
#include "model/safetensors_reader.h"
#include "model/safetensors_writer.h"
#include "test_util.h"

namespace {

using model::DType;
using model::ModelError;
using model::SafetensorsReader;
using model::TensorToWrite;
using model_test::raw_safetensors;
using model_test::TempDir;

constexpr float kInf = std::numeric_limits<float>::infinity();

// Expects opening `bytes` as a safetensors file to throw a model::ModelError mentioning `needle`.
void expect_open_error(const TempDir& dir, const std::string& bytes, const std::string& needle) {
  const auto path = dir / "bad.safetensors";
  test_support::write_file(path, bytes);
  try {
    SafetensorsReader reader(path);
    ADD_FAILURE() << "opened without error; expected '" << needle << "'";
  } catch (const ModelError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find(needle), std::string::npos) << what;
    EXPECT_NE(what.find("bad.safetensors"), std::string::npos) << what;
    EXPECT_EQ(what.find('\n'), std::string::npos) << what;
  }
}

TEST(Safetensors, F32RoundTripIsExact) {
  TempDir dir;
  const std::vector<float> a = {1.5f, -2.25f, 3e-40f, kInf, -0.0f, 1e30f};
  const std::vector<float> b = {7.0f};
  const TensorToWrite tensors[] = {{"b", DType::kF32, {}, b}, {"a", DType::kF32, {2, 3}, a}};
  model::write_safetensors(dir / "t.safetensors", tensors, {{"format", "pt"}});

  SafetensorsReader reader(dir / "t.safetensors");
  ASSERT_EQ(reader.tensors().size(), 2u);
  EXPECT_EQ(reader.tensors()[0].name, "a");
  EXPECT_EQ(reader.info("a").shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(reader.info("b").shape, std::vector<int64_t>{});
  EXPECT_EQ(reader.info("b").numel(), 1);
  const auto read_a = reader.read_f32("a");
  ASSERT_EQ(read_a.size(), a.size());
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(std::memcmp(&read_a[i], &a[i], 4), 0) << i;  // bit-exact, incl. -0 and denormals
  }
  EXPECT_EQ(reader.read_f32("b"), b);
  EXPECT_EQ(reader.metadata().at("format"), "pt");
}

TEST(Safetensors, F16RoundTripKeepsSubnormalsAndInfinities) {
  TempDir dir;
  const float tiny = std::ldexp(1.0f, -24);  // smallest F16 subnormal
  const std::vector<float> v = {1.0f, -65504.0f, tiny, 3 * tiny, -kInf, kInf, 0.5f, 1e6f};
  const TensorToWrite tensors[] = {{"x", DType::kF16, {8}, v}};
  model::write_safetensors(dir / "t.safetensors", tensors);
  SafetensorsReader reader(dir / "t.safetensors");
  EXPECT_EQ(reader.info("x").dtype, DType::kF16);
  EXPECT_EQ(reader.info("x").byte_size(), 16u);
  const auto r = reader.read_f32("x");
  const std::vector<float> expected = {1.0f, -65504.0f, tiny, 3 * tiny, -kInf, kInf, 0.5f, kInf};
  EXPECT_EQ(r, expected);

  // NaN survives too.
  const std::vector<float> nan = {std::nanf("")};
  const TensorToWrite n[] = {{"n", DType::kF16, {1}, nan}};
  model::write_safetensors(dir / "n.safetensors", n);
  EXPECT_TRUE(std::isnan(SafetensorsReader(dir / "n.safetensors").read_f32("n")[0]));
}

TEST(Safetensors, BF16RoundTripRoundsToNearestEven) {
  TempDir dir;
  const float up = 1.0f + 3 * std::ldexp(1.0f, -8);       // tie, odd below: rounds up
  const float down = 1.0f + std::ldexp(1.0f, -8);         // tie, even below: rounds down
  const float near = 1.0f + 0.7f * std::ldexp(1.0f, -7);  // nearer to 1 + 2^-7
  const std::vector<float> v = {up, down, near, -3.0f, kInf};
  const TensorToWrite tensors[] = {{"w", DType::kBF16, {5}, v}};
  model::write_safetensors(dir / "t.safetensors", tensors);
  const auto r = SafetensorsReader(dir / "t.safetensors").read_f32("w");
  const std::vector<float> expected = {1.0f + std::ldexp(1.0f, -6), 1.0f,
                                       1.0f + std::ldexp(1.0f, -7), -3.0f, kInf};
  EXPECT_EQ(r, expected);
}

TEST(Safetensors, HeaderIsSortedPaddedAndCompact) {
  TempDir dir;
  const std::vector<float> v3 = {1, 2, 3};
  const std::vector<float> v1 = {4};
  const TensorToWrite tensors[] = {{"zeta", DType::kF32, {3}, v3},
                                   {"alpha", DType::kBF16, {1}, v1}};
  model::write_safetensors(dir / "t.safetensors", tensors, {{"format", "pt"}});
  const std::string bytes = test_support::slurp(dir / "t.safetensors");
  uint64_t n;
  std::memcpy(&n, bytes.data(), 8);
  EXPECT_EQ(n % 8, 0u);
  EXPECT_EQ(bytes.size(), 8 + n + 2 + 12);
  const std::string header = bytes.substr(8, n);
  EXPECT_EQ(header.rfind("{\"__metadata__\":{\"format\":\"pt\"},\"alpha\":", 0), 0u) << header;
  EXPECT_LT(header.find("\"alpha\""), header.find("\"zeta\""));
  const auto j = nlohmann::json::parse(header);  // trailing spaces are valid JSON whitespace
  EXPECT_EQ(j["alpha"]["data_offsets"], nlohmann::json({0, 2}));
  EXPECT_EQ(j["zeta"]["data_offsets"], nlohmann::json({2, 14}));
  EXPECT_EQ(header.find_first_not_of(' ', header.rfind('}') + 1), std::string::npos);
}

TEST(Safetensors, EmptyTensorAndOverlappingTensorsAreAllowed) {
  TempDir dir;
  const std::string data(8, '\0');
  const std::string header = R"({"e":{"dtype":"F32","shape":[0,4],"data_offsets":[8,8]},)"
                             R"("a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                             R"("b":{"dtype":"F16","shape":[2],"data_offsets":[2,6]}})";
  test_support::write_file(dir / "t.safetensors", raw_safetensors(header, data));
  SafetensorsReader reader(dir / "t.safetensors");
  EXPECT_EQ(reader.info("e").numel(), 0);
  EXPECT_TRUE(reader.read_f32("e").empty());
  EXPECT_EQ(reader.read_f32("a"), (std::vector<float>{0, 0}));
  EXPECT_EQ(reader.read_f32("b"), (std::vector<float>{0, 0}));
}

TEST(Safetensors, NonFloatDtypeIsParsedButNotReadable) {
  TempDir dir;
  const std::string header = R"({"i":{"dtype":"I64","shape":[1],"data_offsets":[0,8]}})";
  test_support::write_file(dir / "t.safetensors", raw_safetensors(header, std::string(8, '\1')));
  SafetensorsReader reader(dir / "t.safetensors");
  EXPECT_EQ(reader.info("i").dtype, DType::kI64);
  EXPECT_EQ(reader.raw(reader.info("i")).size(), 8u);
  EXPECT_THROW(reader.read_f32("i"), ModelError);
  EXPECT_THROW(reader.info("missing"), ModelError);
  EXPECT_EQ(reader.find("missing"), nullptr);
}

TEST(Safetensors, RejectsShortFilesAndBadHeaderLengths) {
  TempDir dir;
  expect_open_error(dir, "", "shorter than");
  expect_open_error(dir, "1234567", "shorter than");
  std::string huge(8, '\0');
  const uint64_t big = 200'000'000;
  std::memcpy(huge.data(), &big, 8);
  expect_open_error(dir, huge + "{}", "limit");
  // Header length pointing past the end of the file.
  std::string past = raw_safetensors("{}", "");
  const uint64_t len = 3;
  std::memcpy(past.data(), &len, 8);
  expect_open_error(dir, past, "past the end");
  std::string max(8, '\xff');
  expect_open_error(dir, max, "limit");
}

TEST(Safetensors, RejectsMalformedHeaders) {
  TempDir dir;
  const std::string d8(8, '\0');
  expect_open_error(dir, raw_safetensors("", d8), "not valid JSON");
  expect_open_error(dir, raw_safetensors("{\"a\":", d8), "not valid JSON");
  expect_open_error(dir, raw_safetensors("[1,2]", d8), "not a JSON object");
  expect_open_error(dir, raw_safetensors(std::string(100, '[') + std::string(100, ']'), d8),
                    "nested too deeply");
  expect_open_error(dir, raw_safetensors(R"({"a":3})", d8), "'a': entry is not a JSON object");
  expect_open_error(dir, raw_safetensors(R"({"a":{"shape":[2],"data_offsets":[0,8]}})", d8),
                    "tensor 'a': missing \"dtype\"");
  expect_open_error(dir, raw_safetensors(R"({"a":{"dtype":"F32","data_offsets":[0,8]}})", d8),
                    "tensor 'a': missing \"shape\"");
  expect_open_error(dir, raw_safetensors(R"({"a":{"dtype":"F32","shape":[2]}})", d8),
                    "tensor 'a': missing \"data_offsets\"");
  expect_open_error(
      dir, raw_safetensors(R"({"a":{"dtype":"F33","shape":[2],"data_offsets":[0,8]}})", d8),
      "unknown dtype 'F33'");
  expect_open_error(dir,
                    raw_safetensors(R"({"a":{"dtype":7,"shape":[2],"data_offsets":[0,8]}})", d8),
                    "\"dtype\" is not a string");
  expect_open_error(
      dir, raw_safetensors(R"({"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", d8),
      "negative");
  expect_open_error(
      dir, raw_safetensors(R"({"a":{"dtype":"F32","shape":[2.5],"data_offsets":[0,8]}})", d8),
      "non-integer");
  expect_open_error(dir,
                    raw_safetensors(R"({"a":{"dtype":"F32","shape":[4294967296,4294967296],)"
                                    R"("data_offsets":[0,8]}})",
                                    d8),
                    "overflows");
  expect_open_error(
      dir,
      raw_safetensors(
          R"({"a":{"dtype":"F32","shape":[18446744073709551615],"data_offsets":[0,8]}})", d8),
      "overflows");
  expect_open_error(dir,
                    raw_safetensors(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0]}})", d8),
                    "array of two integers");
  expect_open_error(
      dir, raw_safetensors(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}})", d8),
      "reversed");
  expect_open_error(dir, raw_safetensors(R"({"__metadata__":{"k":1}})", d8), "'k' is not a string");
  expect_open_error(dir, raw_safetensors(R"({"__metadata__":[]})", d8),
                    "\"__metadata__\" is not a JSON object");
}

TEST(Safetensors, RejectsOffsetsThatDisagreeWithTheShapeOrLeaveTheData) {
  TempDir dir;
  const std::string d8(8, '\0');
  expect_open_error(
      dir, raw_safetensors(R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", d8),
      "hold 8 bytes but F32 [3] needs 12");
  expect_open_error(
      dir, raw_safetensors(R"({"a":{"dtype":"BF16","shape":[2],"data_offsets":[0,8]}})", d8),
      "needs 4");
  expect_open_error(
      dir, raw_safetensors(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})", d8),
      "past the end of the 8-byte data area");
  expect_open_error(dir,
                    raw_safetensors(R"({"a":{"dtype":"F32","shape":[2],)"
                                    R"("data_offsets":[18446744073709551608,0]}})",
                                    d8),
                    "reversed");
}

TEST(Safetensors, WriterRejectsBadInput) {
  TempDir dir;
  const std::vector<float> v = {1, 2, 3};
  const TensorToWrite wrong_count[] = {{"a", DType::kF32, {2}, v}};
  EXPECT_THROW(model::write_safetensors(dir / "t.safetensors", wrong_count), ModelError);
  const TensorToWrite duplicate[] = {{"a", DType::kF32, {3}, v}, {"a", DType::kF32, {3}, v}};
  EXPECT_THROW(model::write_safetensors(dir / "t.safetensors", duplicate), ModelError);
  const TensorToWrite bad_dtype[] = {{"a", DType::kI32, {3}, v}};
  EXPECT_THROW(model::write_safetensors(dir / "t.safetensors", bad_dtype), ModelError);
  const TensorToWrite negative[] = {{"a", DType::kF32, {-3}, v}};
  EXPECT_THROW(model::write_safetensors(dir / "t.safetensors", negative), ModelError);
  const TensorToWrite reserved[] = {{"__metadata__", DType::kF32, {3}, v}};
  EXPECT_THROW(model::write_safetensors(dir / "t.safetensors", reserved), ModelError);
  EXPECT_FALSE(std::filesystem::exists(dir / "t.safetensors"));
  EXPECT_FALSE(std::filesystem::exists(dir / "t.safetensors.tmp"));
  EXPECT_THROW(model::write_safetensors(dir / "no" / "such" / "dir.safetensors", {}), ModelError);
}

// A stream writer killed after its last chunk, just before the rename, leaves the old model
// file byte for byte, and it still opens with its old values.
TEST(Safetensors, AStreamWriterKilledBeforeItsRenameLeavesTheOldFile) {
  TempDir dir;
  const auto path = dir / "model.safetensors";
  const std::vector<float> old_values = {1.0f, -2.0f, 3.5f};
  const TensorToWrite old_tensors[] = {{"w", DType::kF32, {3}, old_values}};
  model::write_safetensors(path, old_tensors);
  const std::string old_bytes = test_support::slurp(path);
  const int status = base::testing::status_of_writer_killed_before_rename([&] {
    const model::TensorSpec specs[] = {{"w", DType::kBF16, {64, 1024}}};
    model::SafetensorsStreamWriter out(path, specs);
    std::vector<float> chunk(4096);
    for (uint64_t first = 0; first < specs[0].numel(); first += chunk.size()) {
      for (size_t i = 0; i < chunk.size(); ++i) chunk[i] = static_cast<float>(first + i);
      out.write(0, first, chunk);
    }
    out.finish();
  });
  ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << "status " << status;
  EXPECT_EQ(test_support::slurp(path), old_bytes);
  EXPECT_EQ(SafetensorsReader(path).read_f32("w"), old_values);
  EXPECT_GT(std::filesystem::file_size(dir / "model.safetensors.tmp"), 64u * 1024 * 2);
}

TEST(Safetensors, OpeningAMissingFileOrADirectoryFails) {
  TempDir dir;
  EXPECT_THROW(SafetensorsReader(dir / "absent.safetensors"), ModelError);
  EXPECT_THROW(SafetensorsReader(dir.path()), ModelError);
}

}  // namespace
