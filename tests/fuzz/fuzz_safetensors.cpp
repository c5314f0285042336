// The safetensors header (model/safetensors_header.h). Bytes 0..7 of the input give the size of
// the data area (little-endian, modulo 2^32), the rest is the JSON header. A parsed header must
// keep every tensor inside the data area with exactly numel x dtype size bytes; a refusal is a
// one-line model::ModelError naming the file.
#include <cstring>

#include "fuzz_target.h"
#include "model/error.h"
#include "model/safetensors_header.h"

namespace {

int one_input(const uint8_t* data, size_t size) {
  uint64_t data_size = 0;
  const size_t prefix = size < 8 ? size : 8;
  std::memcpy(&data_size, data, prefix);
  data_size &= 0xffffffffu;
  const std::string_view json(reinterpret_cast<const char*>(data) + prefix, size - prefix);
  try {
    const auto header = model::parse_safetensors_header(json, data_size, "fuzz.safetensors");
    for (const auto& t : header.tensors) {
      if (t.begin > t.end || t.end > data_size) fuzz::finding("tensor outside the data area");
      const int64_t n = t.numel();
      if (n < 0 || static_cast<uint64_t>(n) * model::dtype_size(t.dtype) != t.byte_size()) {
        fuzz::finding("tensor size disagrees with its shape");
      }
    }
  } catch (const model::ModelError& e) {
    fuzz::expect_one_line(e.what());
    if (std::string_view(e.what()).find("fuzz.safetensors") == std::string_view::npos) {
      fuzz::finding(e.what());
    }
  }
  return 0;
}

}  // namespace

FEDLORA_FUZZ_TARGET(safetensors, one_input)
