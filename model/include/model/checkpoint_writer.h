// Writes a Hugging Face checkpoint, sharded as transformers shards it, tensor by tensor.
//
//   one shard:   model.safetensors
//   more:        model-00001-of-0000N.safetensors ... and model.safetensors.index.json
//                {"metadata": {"total_size": BYTES}, "weight_map": {tensor name -> shard}}
//
// Shards are planned as huggingface_hub's split_state_dict_into_shards_factory plans them: the
// tensors in order fill a shard until the next one would take it over the limit; a tensor
// bigger than the limit on its own gets a shard of its own (listed before the shard being
// filled). total_size is the sum of the tensors' byte sizes. The index is written with sorted
// keys and two-space indentation, as huggingface_hub writes it.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "model/safetensors_writer.h"

namespace model {

// transformers' default max_shard_size, "5GB" (decimal, as transformers reads it).
inline constexpr uint64_t kDefaultMaxShardBytes = 5'000'000'000;

// A size as transformers' convert_file_size_to_int reads it: a plain byte count, or a number
// with a unit: KB, MB, GB (powers of 1000) or KiB, MiB, GiB (powers of 1024); "5GB" is
// 5 * 10^9. Throws model::ModelError for anything else, zero, or a size over 2^62.
uint64_t parse_shard_size(std::string_view text);

// "model-00002-of-00005.safetensors" for (1, 5): `index` counts from 0.
std::string shard_file_name(size_t index, size_t count);

// The shards of `tensors` (indices into it, each shard in tensor order).
std::vector<std::vector<size_t>> plan_shards(std::span<const TensorSpec> tensors,
                                             uint64_t max_shard_bytes);

// Fills `chunk` with the next values of tensors[tensor]; called for every tensor in order, and
// for each with successive chunks that together cover it.
using ChunkFiller = std::function<void(size_t tensor, std::span<float> chunk)>;

// Values per chunk: 4 MiB of float32, so that writing any model holds a few MiB.
inline constexpr size_t kWriteChunkValues = size_t{1} << 20;

// Writes the checkpoint of `tensors` into `dir` (which must exist), asking `fill` for the
// values chunk by chunk, tensor by tensor in the order of `tensors`. Shards are planned over
// the tensors in `shard_order` (indices into `tensors`; empty: their own order), which for a
// transformers model is its state_dict order. Every shard carries the safetensors metadata
// `metadata`. Files go through temporary names renamed into place; the index (when there is
// one) comes last. Throws model::ModelError for an invalid tensor, a shard_order that is not a
// permutation, a zero max_shard_bytes, or an I/O failure.
void write_checkpoint(const std::filesystem::path& dir, std::span<const TensorSpec> tensors,
                      const ChunkFiller& fill, uint64_t max_shard_bytes,
                      std::span<const size_t> shard_order = {},
                      const std::map<std::string, std::string>& metadata = {{"format", "pt"}});

}  // namespace model
