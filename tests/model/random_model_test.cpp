#include "model/random_model.h"

#include <gtest/gtest.h>

#include <cmath>

#include "model/error.h"
#include "model/llama_weights.h"
#include "test_util.h"

namespace {

using model::DType;
using model_test::TempDir;

TEST(RandomModel, WritesALoadableModel) {
  TempDir dir;
  const auto c = model_test::tiny_llama_config();
  model::write_random_llama(dir.path(), c, {7, DType::kBF16});
  const auto loaded = model::load_llama_config(dir.path());
  EXPECT_EQ(loaded.torch_dtype, "bfloat16");
  EXPECT_EQ(loaded.parameter_count(), c.parameter_count());
  const auto w = model::load_llama_weights(dir.path());
  // Projections ~ N(0, 0.02^2), norms ~ 1 + N(0, 0.05^2): check the moments loosely.
  const auto& up = w.layers[1].up_proj;
  const double mean = up.mean();
  const double std = std::sqrt((up.array() - mean).square().mean());
  EXPECT_NEAR(mean, 0.0, 0.003);
  EXPECT_NEAR(std, 0.02, 0.003);
  EXPECT_NEAR(w.norm.mean(), 1.0, 0.05);
  EXPECT_GT(w.norm.maxCoeff() - w.norm.minCoeff(), 0.01);  // not all ones
}

TEST(RandomModel, SameSeedSameBytesOtherSeedOtherBytes) {
  TempDir dir;
  const auto c = model_test::tiny_llama_config();
  model::write_random_llama(dir / "a", c, {1, DType::kF32});
  model::write_random_llama(dir / "b", c, {1, DType::kF32});
  model::write_random_llama(dir / "c", c, {2, DType::kF32});
  const auto a = test_support::slurp(dir / "a" / "model.safetensors");
  EXPECT_EQ(a, test_support::slurp(dir / "b" / "model.safetensors"));
  EXPECT_NE(a, test_support::slurp(dir / "c" / "model.safetensors"));
  EXPECT_EQ(test_support::slurp(dir / "a" / "config.json"),
            test_support::slurp(dir / "c" / "config.json"));
}

TEST(RandomModel, RefusesBadInput) {
  TempDir dir;
  auto c = model_test::tiny_llama_config();
  EXPECT_THROW(model::write_random_llama(dir.path(), c, {0, DType::kI8}), model::ModelError);
  c.num_key_value_heads = 3;
  EXPECT_THROW(model::write_random_llama(dir.path(), c, {0, DType::kF32}), model::ModelError);
  EXPECT_FALSE(std::filesystem::exists(dir / "config.json"));
}

}  // namespace
