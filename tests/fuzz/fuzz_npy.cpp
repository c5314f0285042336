// The .npy reader (tools/common/npy.h): the input is the start of a file whose size is the
// input's size; parse_npy_header either returns a header consistent with that size or throws
// NpyError with one line.
#include "common/npy.h"
#include "fuzz_target.h"

namespace {

int one_input(const uint8_t* data, size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  try {
    const auto h = fedtools::parse_npy_header(bytes, size, "fuzz.npy");
    const size_t es = h.type == fedtools::NpyType::kInt8    ? 1
                      : h.type == fedtools::NpyType::kInt64 ? 8
                                                            : 4;
    if (h.data_offset > size || size - h.data_offset != h.rows * h.cols * es) {
      fuzz::finding("header accepted with a payload that does not match its shape");
    }
  } catch (const fedtools::NpyError& e) {
    fuzz::expect_one_line(e.what());
  }
  return 0;
}

}  // namespace

FEDLORA_FUZZ_TARGET(npy, one_input)
