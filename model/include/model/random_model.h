// Small random Llama models in the Hugging Face layout, for tests and the simulation.
//
// The weights come from a seeded std::mt19937_64: test data, not secrets. Projections and
// embeddings are N(0, 0.02^2), the usual Llama initialisation; RMSNorm weights are
// 1 + N(0, 0.05^2) so that a forward pass actually exercises them.
#pragma once

#include <cstdint>
#include <filesystem>

#include "model/checkpoint_writer.h"
#include "model/dtype.h"
#include "model/llama_config.h"
#include "model/llama_weights.h"

namespace model {

struct RandomModelOptions {
  uint64_t seed = 0;
  DType dtype = DType::kF32;  // F32, F16 or BF16
  // Shards of at most this many bytes (see checkpoint_writer.h); one shard is model.safetensors.
  uint64_t max_shard_bytes = kDefaultMaxShardBytes;
};

// Writes `dir`/config.json and the checkpoint: model.safetensors, or shards and their index
// when the model is bigger than options.max_shard_bytes (creating `dir` if needed; the same
// seed, config and shard size give byte-identical files). Values are generated and written
// chunk by chunk, so writing an 8B model holds a few MiB. config.torch_dtype is set from
// options.dtype. Throws model::ModelError for an invalid config, a non-float dtype, a directory
// that already holds a checkpoint of the other layout (sharded vs one file), or an I/O failure.
void write_random_llama(const std::filesystem::path& dir, const LlamaConfig& config,
                        const RandomModelOptions& options);

// Writes `dir`/config.json and the checkpoint of `weights` (a model trained in this process,
// pretrain.h) in the same layout, float32 (or rounded to options.dtype), one file or shards as
// write_random_llama. Throws model::ModelError like write_random_llama, and for weights whose
// tensors do not have their config's shapes.
void write_llama_weights(const std::filesystem::path& dir, const LlamaWeights& weights,
                         const RandomModelOptions& options = {});

}  // namespace model
