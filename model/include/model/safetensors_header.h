// The JSON header of a safetensors file, parsed and validated.
//
// Layout of a safetensors file (https://github.com/huggingface/safetensors):
//   8 bytes   N, the header length, unsigned little-endian
//   N bytes   a JSON object: tensor name -> {"dtype", "shape", "data_offsets": [begin, end]},
//             plus an optional "__metadata__" object of string -> string; may end in spaces
//   rest      the data area; each tensor's bytes are data[begin, end), row-major, little-endian
//
// Validation is strict about everything that could make a reader touch memory it should not
// (shapes, sizes, offsets) and lenient where the format allows it: tensors may overlap or leave
// gaps in the data area, but never reach past its end.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "model/dtype.h"

namespace model {

// Largest header this library accepts (the reference implementation uses the same bound).
constexpr uint64_t kMaxSafetensorsHeaderBytes = 100'000'000;

struct TensorInfo {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;  // empty for a scalar
  uint64_t begin = 0;          // byte offsets into the data area: [begin, end)
  uint64_t end = 0;

  // Elements: the product of the shape (1 for a scalar, 0 if any dimension is 0).
  int64_t numel() const;
  uint64_t byte_size() const { return end - begin; }
};

struct SafetensorsHeader {
  std::vector<TensorInfo> tensors;              // sorted by name
  std::map<std::string, std::string> metadata;  // the "__metadata__" entries
};

// Parses `json` (the N header bytes) for a file whose data area holds `data_size` bytes.
// Throws model::ModelError with one line starting with `source` (the file name) and naming the
// offending tensor: invalid JSON, a missing or ill-typed "dtype"/"shape"/"data_offsets", an
// unknown dtype, negative or overflowing shapes, offsets that disagree with shape x dtype size,
// offsets past the end of the data area.
SafetensorsHeader parse_safetensors_header(std::string_view json, uint64_t data_size,
                                           std::string_view source);

// "[2, 3]": a shape as error messages and tools print it.
std::string shape_string(const std::vector<int64_t>& shape);

}  // namespace model
