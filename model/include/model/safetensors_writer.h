// Writes a safetensors file from float32 values, converting each tensor to its stored dtype.
//
// The layout follows the reference implementation: the header is compact JSON with
// "__metadata__" first and the tensors sorted by name, padded with spaces to a multiple of 8
// bytes; the data area holds the tensors back to back in the same order.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "base/atomic_file.h"
#include "model/dtype.h"

namespace model {

struct TensorToWrite {
  std::string name;
  DType dtype = DType::kF32;  // F32, F16 or BF16; F16/BF16 round to nearest even
  std::vector<int64_t> shape;
  std::span<const float> values;  // row-major, exactly the product of `shape` values
};

// The name, dtype and shape of a tensor whose values are written later (SafetensorsStreamWriter).
struct TensorSpec {
  std::string name;
  DType dtype = DType::kF32;  // F32, F16 or BF16
  std::vector<int64_t> shape;
  // Values of the shape (1 for a scalar); bytes in the file are numel() * dtype_size(dtype).
  uint64_t numel() const;
  uint64_t byte_size() const;
};

// Writes one safetensors file tensor by tensor, chunk by chunk, so that a model of any size is
// written with one chunk of values in memory. The header (every tensor's dtype, shape and
// offsets, tensors sorted by name) goes out first; each write() converts a chunk of float32
// values and writes it at its place in the data area, in any order. The file is a
// base::AtomicFile (`path`.tmp): finish() checks that every value of every tensor was written
// exactly once, then commits it (fsync, rename into place, fsync of the directory); a writer
// destroyed before finish() removes its temporary file and leaves an old `path` as it was.
class SafetensorsStreamWriter {
 public:
  // Throws model::ModelError for an empty, reserved or duplicate name, a negative or overflowing
  // shape, a dtype other than F32/F16/BF16, or when `path`.tmp cannot be created.
  SafetensorsStreamWriter(const std::filesystem::path& path, std::span<const TensorSpec> tensors,
                          const std::map<std::string, std::string>& metadata = {});
  ~SafetensorsStreamWriter();
  SafetensorsStreamWriter(const SafetensorsStreamWriter&) = delete;
  SafetensorsStreamWriter& operator=(const SafetensorsStreamWriter&) = delete;

  // Writes values [first, first + values.size()) of tensors[tensor] (the constructor's order).
  // Throws model::ModelError for a range past the tensor's end, a range written before, or an I/O
  // failure.
  void write(size_t tensor, uint64_t first, std::span<const float> values);
  // Throws model::ModelError when a value was never written or the file cannot be synced or
  // renamed.
  void finish();

 private:
  std::filesystem::path path_;
  std::optional<base::AtomicFile> file_;  // empty once finished
  std::vector<TensorSpec> specs_;
  std::vector<uint64_t> offsets_;  // file offset of each tensor's first byte
  std::vector<uint64_t> written_;  // values written so far (chunks must come in order)
  std::vector<unsigned char> buffer_;
};

// Writes `tensors` to `path` through a SafetensorsStreamWriter (so atomically: a crash never
// leaves a half-written file under the final name). Throws model::ModelError for an empty or
// duplicate name, a negative shape, a value count that disagrees with the shape, a dtype other
// than F32/F16/BF16, or an I/O failure.
void write_safetensors(const std::filesystem::path& path, std::span<const TensorToWrite> tensors,
                       const std::map<std::string, std::string>& metadata = {});

}  // namespace model
