// Minimal, strict NumPy .npy reader and writer for 2-D C-order matrices (format versions 1-3).
// Supported dtypes: int8 ('|i1'), int64 ('<i8'), float32 ('<f4').
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace fedtools {

class NpyError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

enum class NpyType { kInt8, kInt64, kFloat32 };

struct NpyArray {
  NpyType type = NpyType::kInt8;
  size_t rows = 0, cols = 0;
  std::vector<uint8_t> data;  // raw little-endian payload, rows * cols * element size bytes
};

// Reads a 2-D array (a 1-D array of length k reads as k x 1). Throws NpyError naming the file
// for a missing file, bad magic, malformed header, Fortran order, an unsupported dtype, or a
// payload whose length does not match the shape.
NpyArray read_npy(const std::string& path);

// Reads and requires dtype int8.
std::vector<int8_t> read_npy_int8(const std::string& path, size_t* rows, size_t* cols);

void write_npy(const std::string& path, NpyType type, size_t rows, size_t cols, const void* data);

}  // namespace fedtools
