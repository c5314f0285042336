// Writes a safetensors file from float32 values, converting each tensor to its stored dtype.
//
// The layout follows the reference implementation: the header is compact JSON with
// "__metadata__" first and the tensors sorted by name, padded with spaces to a multiple of 8
// bytes; the data area holds the tensors back to back in the same order.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "model/dtype.h"

namespace model {

struct TensorToWrite {
  std::string name;
  DType dtype = DType::kF32;  // F32, F16 or BF16; F16/BF16 round to nearest even
  std::vector<int64_t> shape;
  std::span<const float> values;  // row-major, exactly the product of `shape` values
};

// Writes `tensors` to `path` (through a temporary file renamed into place, so a crash never
// leaves a half-written file under the final name). Throws model::Error for an empty or
// duplicate name, a negative shape, a value count that disagrees with the shape, a dtype other
// than F32/F16/BF16, or an I/O failure.
void write_safetensors(const std::filesystem::path& path, std::span<const TensorToWrite> tensors,
                       const std::map<std::string, std::string>& metadata = {});

}  // namespace model
