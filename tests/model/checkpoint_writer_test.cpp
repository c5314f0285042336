// Sharded checkpoints as transformers writes them: shard planning, shard names, sizes, the
// streaming safetensors writer, and random models split over shards that load like one file.
#include "model/checkpoint_writer.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <set>

#include "model/error.h"
#include "model/llama_weights.h"
#include "model/random_model.h"
#include "model/safetensors_reader.h"
#include "model/tensor_store.h"
#include "test_util.h"

namespace {

using model::DType;
using model::TensorSpec;
using model_test::TempDir;
using nlohmann::json;

TEST(CheckpointWriter, ParsesSizesAsTransformers) {
  EXPECT_EQ(model::parse_shard_size("5GB"), 5'000'000'000u);
  EXPECT_EQ(model::parse_shard_size("5gb"), 5'000'000'000u);
  EXPECT_EQ(model::parse_shard_size("2GiB"), uint64_t{2} << 30);
  EXPECT_EQ(model::parse_shard_size("500MB"), 500'000'000u);
  EXPECT_EQ(model::parse_shard_size("3MiB"), uint64_t{3} << 20);
  EXPECT_EQ(model::parse_shard_size("10KB"), 10'000u);
  EXPECT_EQ(model::parse_shard_size("1KiB"), 1024u);
  EXPECT_EQ(model::parse_shard_size("12345"), 12345u);
  for (const char* bad : {"", "GB", "5TB", "5 GB", "-1", "0", "0MB", "1.5GB",
                          "99999999999999999999", "9000000000GiB"}) {
    EXPECT_THROW(model::parse_shard_size(bad), model::ModelError) << bad;
  }
}

TEST(CheckpointWriter, NamesShardsAsTransformers) {
  EXPECT_EQ(model::shard_file_name(0, 4), "model-00001-of-00004.safetensors");
  EXPECT_EQ(model::shard_file_name(3, 4), "model-00004-of-00004.safetensors");
  EXPECT_EQ(model::shard_file_name(11, 123), "model-00012-of-00123.safetensors");
}

TEST(CheckpointWriter, PlansShardsAsHuggingFaceHub) {
  // Byte sizes 40, 40, 30, 100, 20, 50. With a 100-byte limit: fill until the next tensor would
  // overflow. With 99, d is over the limit on its own: it gets its own shard, listed before the
  // shard being filled.
  const std::vector<TensorSpec> t = {
      {"a", DType::kF32, {10}},      {"b", DType::kF32, {10}}, {"c", DType::kBF16, {15}},
      {"d", DType::kF32, {5, 5, 1}}, {"e", DType::kF16, {10}}, {"f", DType::kBF16, {25}},
  };
  ASSERT_EQ(t[3].byte_size(), 100u);
  EXPECT_EQ(model::plan_shards(t, 100),
            (std::vector<std::vector<size_t>>{{0, 1}, {2}, {3}, {4, 5}}));
  EXPECT_EQ(model::plan_shards(t, 99),
            (std::vector<std::vector<size_t>>{{0, 1}, {3}, {2, 4}, {5}}));
  EXPECT_EQ(model::plan_shards(t, 1000), (std::vector<std::vector<size_t>>{{0, 1, 2, 3, 4, 5}}));
  EXPECT_EQ(model::plan_shards(t, 1).size(), 6u);
}

TEST(SafetensorsStreamWriter, WritesChunksInPlaceAndChecksCompleteness) {
  TempDir dir;
  const std::vector<TensorSpec> specs = {{"z", DType::kF32, {3}}, {"a", DType::kBF16, {2, 2}}};
  {
    model::SafetensorsStreamWriter w(dir / "x.safetensors", specs, {{"format", "pt"}});
    const float z1[] = {1, 2}, z2[] = {3}, a[] = {0.5f, -1, 2, 4};
    w.write(0, 0, z1);
    EXPECT_THROW(w.write(0, 0, z2), model::ModelError);  // not the next values
    EXPECT_THROW(w.write(1, 1, a), model::ModelError);
    w.write(1, 0, a);
    EXPECT_THROW(w.finish(), model::ModelError);  // z is not complete
  }
  EXPECT_FALSE(std::filesystem::exists(dir / "x.safetensors"));
  EXPECT_FALSE(std::filesystem::exists(dir / "x.safetensors.tmp"));
  {
    model::SafetensorsStreamWriter w(dir / "x.safetensors", specs, {{"format", "pt"}});
    const float z[] = {1, 2, 3}, a1[] = {0.5f}, a2[] = {-1, 2, 4};
    w.write(1, 0, a1);
    w.write(0, 0, z);
    w.write(1, 1, a2);
    w.finish();
  }
  const model::SafetensorsReader r(dir / "x.safetensors");
  EXPECT_EQ(r.metadata().at("format"), "pt");
  EXPECT_EQ(r.read_f32("z"), (std::vector<float>{1, 2, 3}));
  EXPECT_EQ(r.read_f32("a"), (std::vector<float>{0.5f, -1, 2, 4}));
  EXPECT_EQ(r.info("a").dtype, DType::kBF16);
  EXPECT_EQ(r.tensors()[0].name, "a");  // sorted by name, data in that order
  EXPECT_EQ(r.info("a").begin, 0u);
}

TEST(CheckpointWriter, ShardedRandomModelHoldsTheSameValuesAsOneFile) {
  TempDir dir;
  const auto c = model_test::tiny_llama_config();
  model::write_random_llama(dir / "one", c, {3, DType::kBF16});
  model::RandomModelOptions sharded{3, DType::kBF16};
  sharded.max_shard_bytes = 4000;
  model::write_random_llama(dir / "many", c, sharded);
  EXPECT_TRUE(std::filesystem::exists(dir / "one" / "model.safetensors"));
  EXPECT_FALSE(std::filesystem::exists(dir / "one" / "model.safetensors.index.json"));
  EXPECT_FALSE(std::filesystem::exists(dir / "many" / "model.safetensors"));

  const json index =
      json::parse(test_support::slurp(dir / "many" / "model.safetensors.index.json"));
  ASSERT_TRUE(index.contains("metadata") && index.contains("weight_map"));
  EXPECT_EQ(index.size(), 2u);
  EXPECT_EQ(index["metadata"].size(), 1u);
  std::set<std::string> files;
  for (const auto& [name, file] : index["weight_map"].items())
    files.insert(file.get<std::string>());
  ASSERT_GT(files.size(), 2u);
  uint64_t sum = 0;
  for (const std::string& f : files) {
    EXPECT_EQ(f, model::shard_file_name(static_cast<size_t>(std::stoi(f.substr(6, 5)) - 1),
                                        files.size()));
    const model::SafetensorsReader r(dir / "many" / f);
    uint64_t shard_bytes = 0;
    for (const auto& t : r.tensors()) {
      EXPECT_EQ(index["weight_map"][t.name], f) << t.name;
      shard_bytes += t.byte_size();
    }
    if (r.tensors().size() > 1) {  // else one tensor over the limit
      EXPECT_LE(shard_bytes, 4000u);
    }
    sum += shard_bytes;
  }
  EXPECT_EQ(index["metadata"]["total_size"].get<uint64_t>(), sum);

  const auto one = model::TensorStore::open(dir / "one");
  const auto many = model::TensorStore::open(dir / "many");
  ASSERT_EQ(one.names(), many.names());
  for (const auto& name : one.names()) EXPECT_EQ(one.read_f32(name), many.read_f32(name)) << name;
  const auto w = model::load_llama_weights(dir / "many");
  EXPECT_EQ(w.layers.size(), static_cast<size_t>(c.num_hidden_layers));

  // A directory holding one layout is not overwritten with the other.
  EXPECT_THROW(model::write_random_llama(dir / "one", c, sharded), model::ModelError);
  EXPECT_THROW(model::write_random_llama(dir / "many", c, {3, DType::kBF16}), model::ModelError);
}

TEST(TensorStore, ReleasedPagesReadBackTheSameValues) {
  TempDir dir;
  auto c = model_test::tiny_llama_config();
  c.vocab_size = 4096;  // an embedding of 256 KiB in f32: many whole pages
  model::write_random_llama(dir.path(), c, {9, DType::kF32});
  const auto store = model::TensorStore::open(dir.path());
  const auto before = store.read_f32("model.embed_tokens.weight");
  store.release("model.embed_tokens.weight");
  EXPECT_EQ(store.read_f32("model.embed_tokens.weight"), before);
  store.release("model.norm.weight");  // smaller than a page: nothing to drop, still fine
  EXPECT_EQ(store.read_f32("model.norm.weight").size(), 16u);
  EXPECT_THROW(store.release("no.such.tensor"), model::ModelError);
}

}  // namespace
