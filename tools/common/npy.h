// Minimal, strict NumPy .npy reader and writer for 2-D C-order matrices (format versions 1-3).
// Supported dtypes: int8 ('|i1'), int64 ('<i8'), float32 ('<f4').
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
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

// The longest header read_npy accepts (NumPy's own default max_header_size); the header of a
// 2-D array of a supported dtype is under 128 bytes.
constexpr size_t kMaxHeaderBytes = 10000;

// What the header of a .npy file says, checked against the file's size.
struct NpyHeader {
  NpyType type = NpyType::kInt8;
  size_t rows = 0, cols = 0;
  size_t data_offset = 0;  // where the payload starts; file size - data_offset = its length
};

// Parses the magic, version and header dictionary at the start of `bytes` (the first bytes of a
// file of `file_size` bytes; 12 + kMaxHeaderBytes of them are always enough). Throws NpyError
// starting with `name` for everything read_npy refuses. No allocation depends on the input
// beyond the header's own bounded length.
NpyHeader parse_npy_header(std::string_view bytes, uint64_t file_size, const std::string& name);

// Reads a 2-D array (a 1-D array of length k reads as k x 1). Throws NpyError naming the file
// for a missing file, bad magic, a header over kMaxHeaderBytes or malformed, Fortran order, an
// unsupported dtype, or a payload whose length does not match the shape.
NpyArray read_npy(const std::string& path);

// Reads and requires dtype int8.
std::vector<int8_t> read_npy_int8(const std::string& path, size_t* rows, size_t* cols);

// Writes a 2-D array atomically (base::AtomicFile); throws NpyError naming the file.
void write_npy(const std::string& path, NpyType type, size_t rows, size_t cols, const void* data);

}  // namespace fedtools
