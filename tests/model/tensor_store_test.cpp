#include "model/tensor_store.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <vector>

#include "model/error.h"
#include "model/safetensors_writer.h"
#include "test_util.h"

namespace {

using model::DType;
using model::ModelError;
using model::TensorStore;
using model::TensorToWrite;
using model_test::TempDir;

const std::vector<float> kA = {1, 2, 3, 4, 5, 6};
const std::vector<float> kB = {-1, -2};
const std::vector<float> kC = {0.5f, 0.25f, 0.125f};

void write_shards(const TempDir& dir) {
  const TensorToWrite shard1[] = {{"a", DType::kF32, {2, 3}, kA}, {"b", DType::kBF16, {2}, kB}};
  const TensorToWrite shard2[] = {{"c", DType::kF16, {3}, kC}};
  model::write_safetensors(dir / "model-00001-of-00002.safetensors", shard1);
  model::write_safetensors(dir / "model-00002-of-00002.safetensors", shard2);
}

void write_index(const TempDir& dir, const nlohmann::json& weight_map) {
  const nlohmann::json index = {{"metadata", {{"total_size", 30}}}, {"weight_map", weight_map}};
  test_support::write_file(dir / model::kShardIndexFile, index.dump(2));
}

const nlohmann::json kWeightMap = {{"a", "model-00001-of-00002.safetensors"},
                                   {"b", "model-00001-of-00002.safetensors"},
                                   {"c", "model-00002-of-00002.safetensors"}};

void expect_open_error(const TempDir& dir, const std::string& needle) {
  try {
    TensorStore::open(dir.path());
    ADD_FAILURE() << "opened; expected '" << needle << "'";
  } catch (const ModelError& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

TEST(TensorStore, SingleFile) {
  TempDir dir;
  const TensorToWrite tensors[] = {{"a", DType::kF32, {2, 3}, kA}};
  model::write_safetensors(dir / model::kSingleCheckpointFile, tensors);
  const TensorStore store = TensorStore::open(dir.path());
  EXPECT_EQ(store.names(), std::vector<std::string>{"a"});
  EXPECT_EQ(store.read_f32("a"), kA);
  EXPECT_EQ(store.file_of("a"), dir / model::kSingleCheckpointFile);
}

TEST(TensorStore, ShardedRoundTrip) {
  TempDir dir;
  write_shards(dir);
  write_index(dir, kWeightMap);
  const TensorStore store = TensorStore::open(dir.path());
  EXPECT_EQ(store.names(), (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_TRUE(store.contains("c"));
  EXPECT_FALSE(store.contains("d"));
  EXPECT_EQ(store.info("b").dtype, DType::kBF16);
  EXPECT_EQ(store.file_of("c"), dir / "model-00002-of-00002.safetensors");
  std::vector<float> a(6);
  store.read_f32("a", {2, 3}, a);
  EXPECT_EQ(a, kA);
  EXPECT_EQ(store.read_f32("b"), kB);
  EXPECT_EQ(store.read_f32("c"), kC);
}

TEST(TensorStore, ShapeChecks) {
  TempDir dir;
  write_shards(dir);
  write_index(dir, kWeightMap);
  const TensorStore store = TensorStore::open(dir.path());
  std::vector<float> out(6);
  try {
    store.read_f32("a", {3, 2}, out);
    ADD_FAILURE();
  } catch (const ModelError& e) {
    const std::string what = e.what();
    EXPECT_NE(
        what.find("model-00001-of-00002.safetensors: tensor 'a': shape [2, 3], expected [3, 2]"),
        std::string::npos)
        << what;
  }
  EXPECT_THROW(store.read_f32("missing", {1}, out), ModelError);
  EXPECT_NO_THROW(store.check("a", {2, 3}));
}

TEST(TensorStore, IndexErrors) {
  TempDir dir;
  write_shards(dir);

  nlohmann::json missing = kWeightMap;
  missing["d"] = "model-00002-of-00002.safetensors";
  write_index(dir, missing);
  expect_open_error(dir, "tensor 'd' listed in model.safetensors.index.json is missing");

  nlohmann::json unlisted = kWeightMap;
  unlisted.erase("b");
  write_index(dir, unlisted);
  expect_open_error(dir, "tensor 'b' is not listed");

  nlohmann::json no_shard = kWeightMap;
  no_shard["a"] = "model-00003-of-00002.safetensors";
  write_index(dir, no_shard);
  expect_open_error(dir, "model-00003-of-00002.safetensors: cannot open");

  nlohmann::json elsewhere = kWeightMap;
  elsewhere["a"] = "model-00002-of-00002.safetensors";
  write_index(dir, elsewhere);
  expect_open_error(dir,
                    "00001-of-00002.safetensors: tensor 'a' is stored here but "
                    "model.safetensors.index.json maps it to model-00002-of-00002.safetensors");

  nlohmann::json escape = kWeightMap;
  escape["a"] = "../model-00001-of-00002.safetensors";
  write_index(dir, escape);
  expect_open_error(dir, "leaves the model directory");

  nlohmann::json absolute = kWeightMap;
  absolute["a"] = "/etc/passwd";
  write_index(dir, absolute);
  expect_open_error(dir, "leaves the model directory");

  nlohmann::json not_string = kWeightMap;
  not_string["a"] = 3;
  write_index(dir, not_string);
  expect_open_error(dir, "'a' is not a string");

  test_support::write_file(dir / model::kShardIndexFile, "{\"weight_map\": [");
  expect_open_error(dir, "not valid JSON");
  test_support::write_file(dir / model::kShardIndexFile, "{\"metadata\": {}}");
  expect_open_error(dir, "missing \"weight_map\"");
}

TEST(TensorStore, MissingCheckpoint) {
  TempDir dir;
  expect_open_error(dir, "no model.safetensors or model.safetensors.index.json");
  EXPECT_THROW(TensorStore::open(dir / "nonexistent"), ModelError);
}

}  // namespace
