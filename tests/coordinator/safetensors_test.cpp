#include "coordinator/safetensors.h"

#include <cstring>

#include "coordinator/files.h"
#include "coordinator/peft.h"
#include "test_util.h"

namespace coordinator {
namespace {

using coordinator_test::small_adapter;
using coordinator_test::TempDir;

// A file with this JSON header and `data_bytes` bytes of data.
std::vector<uint8_t> file_with(const std::string& header, size_t data_bytes) {
  std::vector<uint8_t> out(8 + header.size() + data_bytes, 0);
  uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) out[i] = static_cast<uint8_t>(n >> (8 * i));
  std::memcpy(out.data() + 8, header.data(), header.size());
  return out;
}

TEST(Safetensors, RoundTripsBitExactly) {
  const Adapter a = small_adapter(0.5f);
  auto parsed = parse_safetensors(serialize_safetensors(a));
  ASSERT_TRUE(parsed.ok()) << parsed.error().to_string();
  EXPECT_EQ(parsed.value(), a);
}

TEST(Safetensors, ReadsTensorsInAnyOffsetOrderAndSortsByName) {
  auto bytes = file_with(
      R"({"b": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},
          "a": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]},
          "__metadata__": {"format": "pt"}})",
      12);
  const float values[3] = {1.0f, 2.0f, 3.0f};
  std::memcpy(bytes.data() + bytes.size() - 12, values, 12);
  auto a = parse_safetensors(bytes);
  ASSERT_TRUE(a.ok()) << a.error().to_string();
  ASSERT_EQ(a.value().tensors.size(), 2u);
  EXPECT_EQ(a.value().tensors[0].name, "a");
  EXPECT_EQ(a.value().values, (std::vector<float>{2.0f, 3.0f, 1.0f}));
}

TEST(Safetensors, RefusesMalformedFiles) {
  const std::vector<std::pair<std::string, std::vector<uint8_t>>> cases = {
      {"short", {1, 2, 3}},
      {"length beyond the file",
       [] {
         auto f = file_with(R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}})", 4);
         f[0] = 0xff;
         f[1] = 0xff;
         return f;
       }()},
      {"not json", file_with("{nope", 0)},
      {"not an object", file_with("[1, 2]", 0)},
      {"no tensors", file_with("{}", 0)},
      {"F16", file_with(R"({"a": {"dtype": "F16", "shape": [2], "data_offsets": [0, 4]}})", 4)},
      {"negative dim",
       file_with(R"({"a": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}})", 4)},
      {"zero dim",
       file_with(R"({"a": {"dtype": "F32", "shape": [0], "data_offsets": [0, 0]}})", 0)},
      {"offsets vs shape",
       file_with(R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 4]}})", 4)},
      {"beyond data",
       file_with(R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}})", 4)},
      {"trailing bytes",
       file_with(R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}})", 8)},
      {"overlap", file_with(R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                               "b": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}})",
                            8)},
      {"duplicate name", file_with(R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},
                     "a": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}})",
                                   8)},
      {"extra field",
       file_with(R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4], "x": 1}})", 4)},
      {"rank 5",
       file_with(R"({"a": {"dtype": "F32", "shape": [1,1,1,1,1], "data_offsets": [0, 4]}})", 4)},
  };
  for (const auto& [what, bytes] : cases) {
    auto a = parse_safetensors(bytes);
    EXPECT_FALSE(a.ok()) << what;
    if (!a.ok()) {
      EXPECT_FALSE(a.error().message.empty()) << what;
    }
  }
}

TEST(Safetensors, RefusesATruncatedFile) {
  TempDir dir;
  const auto bytes = serialize_safetensors(small_adapter());
  ASSERT_TRUE(write_file_atomic(dir.path() / "x.safetensors",
                                std::span<const uint8_t>(bytes.data(), bytes.size() - 3))
                  .ok());
  EXPECT_FALSE(read_safetensors(dir.path() / "x.safetensors").ok());
  EXPECT_FALSE(read_safetensors(dir.path() / "missing.safetensors").ok());
}

TEST(Peft, ExportAndLoadRoundTrip) {
  TempDir dir;
  const PeftAdapter p{small_adapter(1.0f), R"({"r": 2})"};
  ASSERT_TRUE(export_peft(dir.path() / "adapter", p).ok());
  auto back = load_peft(dir.path() / "adapter");
  ASSERT_TRUE(back.ok()) << back.error().to_string();
  EXPECT_EQ(back.value().adapter, p.adapter);
  EXPECT_EQ(back.value().config_json, p.config_json);
  ASSERT_TRUE(
      write_file_atomic(dir.path() / "adapter" / "adapter_config.json", std::string("not json"))
          .ok());
  EXPECT_FALSE(load_peft(dir.path() / "adapter").ok());
}

}  // namespace
}  // namespace coordinator
