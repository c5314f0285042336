// Quantizing straight from the checkpoint files equals quantizing the loaded float32 weights,
// bit for bit, whatever the slice size and the dtype; the streamed model hash equals the
// in-memory one; weights loaded without their decoder projections refuse to hand them out.
#include "model/quantized_checkpoint.h"

#include <gtest/gtest.h>

#include "model/embedding.h"
#include "model/error.h"
#include "model/llama_weights.h"
#include "model/model_hash.h"
#include "model/random_model.h"
#include "test_util.h"

namespace {

using model_test::TempDir;

model::LlamaConfig config_for_test() {
  model::LlamaConfig c = model_test::tiny_llama_config();
  c.num_hidden_layers = 2;
  return c;
}

bool same(const model::QuantizedWeight& a, const model::QuantizedWeight& b) {
  return a.rows == b.rows && a.cols == b.cols && a.values == b.values && a.scales == b.scales;
}

TEST(QuantizedCheckpoint, EqualsQuantizingTheLoadedWeightsBitForBit) {
  for (const model::DType dtype : {model::DType::kF32, model::DType::kBF16, model::DType::kF16}) {
    TempDir dir;
    const model::LlamaConfig config = config_for_test();
    model::RandomModelOptions options;
    options.seed = 11;
    options.dtype = dtype;
    options.max_shard_bytes = 8 << 10;  // several shards
    model::write_random_llama(dir.path(), config, options);
    const model::LlamaWeights weights = model::load_llama_weights(dir.path());
    const model::TensorStore store = model::TensorStore::open(dir.path());
    for (const model::ProjectionId id : model::llama_projections(weights.config)) {
      const model::QuantizedWeight want =
          model::quantize_weight_rows(model::projection_weight(weights, id));
      EXPECT_TRUE(same(model::quantize_checkpoint_projection(store, weights.config, id), want))
          << model::projection_name(id);
      // Slices of 1, 3 and 7 rows (the last one partial) give the same weight.
      const model::ProjectionDims dims = model::projection_dims(weights.config, id.kind);
      const std::string name = model::projection_tensor_name(weights.config, id);
      for (const int64_t rows : {1, 3, 7}) {
        EXPECT_TRUE(same(model::quantize_checkpoint_tensor(store, name, dims.d_out, dims.d_in,
                                                           rows * dims.d_in * 4),
                         want))
            << model::projection_name(id) << " in slices of " << rows << " rows";
      }
    }
    EXPECT_EQ(model::quantized_model_hash(store, weights.config),
              model::quantized_model_hash(weights));
  }
}

TEST(QuantizedCheckpoint, TheLmHeadIsTheEmbeddingWhenTied) {
  model::LlamaConfig config = config_for_test();
  config.tie_word_embeddings = true;
  EXPECT_EQ(model::projection_tensor_name(config, model::ProjectionId::lm_head()),
            "model.embed_tokens.weight");
  config.tie_word_embeddings = false;
  EXPECT_EQ(model::projection_tensor_name(config, model::ProjectionId::lm_head()),
            "lm_head.weight");
  EXPECT_EQ(model::projection_tensor_name(config, {model::ProjectionKind::kDown, 1}),
            "model.layers.1.mlp.down_proj.weight");
  EXPECT_THROW(model::projection_tensor_name(config, {model::ProjectionKind::kQ, 2}), model::ModelError);
}

TEST(QuantizedCheckpoint, AWrongShapeOrRowRangeIsAClearError) {
  TempDir dir;
  const model::LlamaConfig config = config_for_test();
  model::write_random_llama(dir.path(), config, {});
  const model::TensorStore store = model::TensorStore::open(dir.path());
  const std::string name = model::projection_tensor_name(config, {model::ProjectionKind::kQ, 0});
  const model::ProjectionDims dims = model::projection_dims(config, model::ProjectionKind::kQ);
  EXPECT_THROW(model::quantize_checkpoint_tensor(store, name, dims.d_out + 1, dims.d_in),
               model::ModelError);
  std::vector<float> out(static_cast<size_t>(dims.d_in));
  try {
    store.read_f32_rows(name, {dims.d_out, dims.d_in}, dims.d_out, 1, out);
    ADD_FAILURE() << "a row past the end was read";
  } catch (const model::ModelError& e) {
    EXPECT_NE(std::string(e.what()).find("outside"), std::string::npos) << e.what();
  }
  EXPECT_THROW(store.read_f32_rows(name, {dims.d_out, dims.d_in}, 0, 2, out), model::ModelError);
}

TEST(QuantizedCheckpoint, WeightsWithoutDecoderProjectionsKeepEverythingElse) {
  TempDir dir;
  const model::LlamaConfig config = config_for_test();
  model::write_random_llama(dir.path(), config, {});
  const model::LlamaWeights full = model::load_llama_weights(dir.path());
  model::WeightLoadOptions load;
  load.decoder_projections = false;
  const model::LlamaWeights lean = model::load_llama_weights(dir.path(), load);
  EXPECT_TRUE(model::has_decoder_projections(full));
  EXPECT_FALSE(model::has_decoder_projections(lean));
  EXPECT_EQ(lean.embed_tokens, full.embed_tokens);
  EXPECT_EQ(lean.norm, full.norm);
  ASSERT_EQ(lean.layers.size(), full.layers.size());
  for (size_t l = 0; l < lean.layers.size(); ++l) {
    EXPECT_EQ(lean.layers[l].input_layernorm, full.layers[l].input_layernorm);
    EXPECT_EQ(lean.layers[l].post_attention_layernorm, full.layers[l].post_attention_layernorm);
    EXPECT_EQ(lean.layers[l].q_proj.size(), 0);
    EXPECT_EQ(lean.layers[l].down_proj.size(), 0);
  }
  EXPECT_EQ(model::projection_weight(lean, model::ProjectionId::lm_head()),
            model::projection_weight(full, model::ProjectionId::lm_head()));
  try {
    model::projection_weight(lean, {model::ProjectionKind::kGate, 1});
    ADD_FAILURE() << "an unloaded projection was handed out";
  } catch (const model::ModelError& e) {
    EXPECT_NE(std::string(e.what()).find("layers.1.gate_proj"), std::string::npos) << e.what();
  }
}

TEST(QuantizedCheckpoint, WithoutEmbeddingTablesLookupsAndTheLmHeadComeFromTheFiles) {
  for (const bool tied : {true, false}) {
    TempDir dir;
    model::LlamaConfig config = config_for_test();
    config.tie_word_embeddings = tied;
    model::RandomModelOptions options;
    options.seed = 3;
    options.dtype = model::DType::kBF16;
    model::write_random_llama(dir.path(), config, options);
    const model::LlamaWeights full = model::load_llama_weights(dir.path());
    model::WeightLoadOptions load;
    load.decoder_projections = false;
    load.embeddings = false;
    const model::LlamaWeights lean = model::load_llama_weights(dir.path(), load);
    EXPECT_EQ(lean.embed_tokens.size(), 0);
    EXPECT_EQ(lean.lm_head_weight.size(), 0);
    ASSERT_NE(lean.store, nullptr);
    const std::vector<int32_t> tokens = {0, 7, 299, 7, 42};
    model::Activations from_file, from_memory;
    model::embedding_forward(lean, tokens, from_file);
    model::embedding_forward(full, tokens, from_memory);
    EXPECT_EQ(from_file, from_memory) << "tied " << tied;
    for (const model::ProjectionId id :
         {model::ProjectionId::lm_head(), model::ProjectionId{model::ProjectionKind::kUp, 1}}) {
      EXPECT_TRUE(
          same(model::quantized_projection(lean, id), model::quantized_projection(full, id)))
          << model::projection_name(id) << " tied " << tied;
    }
    EXPECT_THROW(model::projection_weight(lean, model::ProjectionId::lm_head()), model::ModelError);
  }
}

}  // namespace
