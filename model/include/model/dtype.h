// Element types of safetensors tensors and exact conversions between float32 and the 16-bit
// floating-point formats.
//
// Only F32, F16 and BF16 tensors can be read as float32; the other safetensors dtypes are known
// (so a file holding them is still parsed and size-checked) but refused on access.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace model {

enum class DType {
  kBool,
  kU8,
  kI8,
  kF8E4M3,
  kF8E5M2,
  kI16,
  kU16,
  kF16,
  kBF16,
  kI32,
  kU32,
  kF32,
  kF64,
  kI64,
  kU64,
};

// The safetensors spelling: "F32", "BF16", "F8_E4M3", ...
std::string_view dtype_name(DType dtype);
// Parses a safetensors dtype name; nullopt for an unknown name.
std::optional<DType> parse_dtype(std::string_view name);
// Bytes of one element.
size_t dtype_size(DType dtype);
// True for F32, F16 and BF16: the dtypes this library converts to float32.
bool is_float_dtype(DType dtype);
// The Hugging Face `torch_dtype` spelling of a float dtype: "float32", "float16", "bfloat16".
std::string_view torch_dtype_name(DType dtype);

// IEEE binary16 -> float32. Exact for every input: subnormals, infinities, NaN (payload kept).
float f16_to_f32(uint16_t h);
// float32 -> IEEE binary16, rounding to nearest, ties to even; overflow gives infinity and NaN
// stays a (quiet) NaN.
uint16_t f32_to_f16(float f);
// bfloat16 -> float32. Exact.
float bf16_to_f32(uint16_t b);
// float32 -> bfloat16, rounding to nearest, ties to even; NaN stays a (quiet) NaN.
uint16_t f32_to_bf16(float f);

}  // namespace model
