// The tensors of a model directory, looked up by name whether the checkpoint is one file or
// sharded.
//
//   model.safetensors                    one file holding every tensor, or
//   model.safetensors.index.json         {"weight_map": {tensor name -> shard file name}}
//   model-00001-of-00002.safetensors ... the shards it names
//
// Every file is mapped and its header validated when the store opens, so lookups and reads
// afterwards only fail for a missing tensor, a wrong shape or an unreadable dtype.
#pragma once

#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "model/safetensors_reader.h"

namespace model {

inline constexpr char kSingleCheckpointFile[] = "model.safetensors";
inline constexpr char kShardIndexFile[] = "model.safetensors.index.json";

class TensorStore {
 public:
  // Opens the checkpoint in `dir`: the shard index if there is one, else model.safetensors.
  // Throws model::ModelError: neither file exists, the index is not valid JSON or lacks a
  // "weight_map" of string -> string, a shard name leaves the directory, a shard cannot be
  // opened, a tensor the index names is missing from its shard, or a shard holds a tensor the
  // index does not list.
  static TensorStore open(const std::filesystem::path& dir);
  // A store over one safetensors file.
  static TensorStore open_file(const std::filesystem::path& file);

  // The model directory (for a single file: the directory holding it).
  const std::filesystem::path& dir() const { return dir_; }
  // Every tensor name, sorted.
  std::vector<std::string> names() const;
  bool contains(std::string_view name) const;
  // The tensor's header entry; throws model::ModelError if there is no such tensor.
  const TensorInfo& info(std::string_view name) const;
  // The file holding the tensor; throws model::ModelError if there is no such tensor.
  const std::filesystem::path& file_of(std::string_view name) const;

  // Reads the tensor as float32 into `out` after checking that its shape is `expected_shape`
  // (and hence that `out` has the right size). Throws model::ModelError naming file and tensor.
  void read_f32(std::string_view name, const std::vector<int64_t>& expected_shape,
                std::span<float> out) const;
  // Reads the tensor as float32, whatever its shape.
  std::vector<float> read_f32(std::string_view name) const;

  // Rows [row_begin, row_begin + row_count) of a 2-D tensor whose shape must be
  // `expected_shape` ({rows, cols}), as float32 row-major into `out` (row_count * cols values):
  // a reader that quantizes row by row never holds the tensor in float32. Throws model::ModelError
  // naming file and tensor for a wrong shape, a row range outside it or a wrong `out` size.
  void read_f32_rows(std::string_view name, const std::vector<int64_t>& expected_shape,
                     int64_t row_begin, int64_t row_count, std::span<float> out) const;
  // Drops the mapped pages of those rows (whole pages only), as release() does for the tensor.
  void release_rows(std::string_view name, int64_t row_begin, int64_t row_count) const;

  // Drops the tensor's mapped pages from this process's RSS (SafetensorsReader::release); a
  // later read maps them in again. Throws model::ModelError if there is no such tensor.
  void release(std::string_view name) const;

  // Throws model::ModelError unless the tensor exists with exactly `expected_shape` and a float
  // dtype.
  void check(std::string_view name, const std::vector<int64_t>& expected_shape) const;

 private:
  struct Entry {
    const SafetensorsReader* file;
    const TensorInfo* info;
  };
  const Entry& entry(std::string_view name) const;

  std::filesystem::path dir_;
  std::vector<std::unique_ptr<SafetensorsReader>> files_;
  std::unordered_map<std::string, Entry> entries_;
};

}  // namespace model
