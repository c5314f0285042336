#include "model/safetensors_reader.h"

#include <algorithm>
#include <bit>
#include <cstring>

#include "model/error.h"

namespace model {

static_assert(std::endian::native == std::endian::little,
              "safetensors data is little-endian; this reader assumes a little-endian host");

namespace {

template <typename Convert>
void convert_u16(const std::byte* src, std::span<float> out, Convert convert) {
  for (size_t i = 0; i < out.size(); ++i) {
    uint16_t v;
    std::memcpy(&v, src + 2 * i, 2);
    out[i] = convert(v);
  }
}

}  // namespace

SafetensorsReader::SafetensorsReader(const std::filesystem::path& path) : file_(path) {
  const std::string source = path.string();
  const auto bytes = file_.bytes();
  if (bytes.size() < 8) {
    throw ModelError(source + ": file is " + std::to_string(bytes.size()) +
                " bytes, shorter than the 8-byte safetensors header length");
  }
  uint64_t header_len;
  std::memcpy(&header_len, bytes.data(), 8);
  if (header_len > kMaxSafetensorsHeaderBytes) {
    throw ModelError(source + ": header length " + std::to_string(header_len) + " exceeds the " +
                std::to_string(kMaxSafetensorsHeaderBytes) +
                "-byte limit (not a safetensors file?)");
  }
  if (header_len > bytes.size() - 8) {
    throw ModelError(source + ": header length " + std::to_string(header_len) +
                " runs past the end of the " + std::to_string(bytes.size()) +
                "-byte file (truncated file?)");
  }
  data_start_ = 8 + header_len;
  const std::string_view text(reinterpret_cast<const char*>(bytes.data()) + 8, header_len);
  header_ = parse_safetensors_header(text, bytes.size() - data_start_, source);
}

const TensorInfo* SafetensorsReader::find(std::string_view name) const {
  const auto& ts = header_.tensors;
  const auto it =
      std::lower_bound(ts.begin(), ts.end(), name,
                       [](const TensorInfo& t, std::string_view n) { return t.name < n; });
  return it != ts.end() && it->name == name ? &*it : nullptr;
}

const TensorInfo& SafetensorsReader::info(std::string_view name) const {
  const TensorInfo* t = find(name);
  if (t == nullptr) throw ModelError(path().string() + ": no tensor '" + std::string(name) + "'");
  return *t;
}

std::span<const std::byte> SafetensorsReader::raw(const TensorInfo& info) const {
  return file_.bytes().subspan(data_start_ + info.begin, info.byte_size());
}

void SafetensorsReader::read_f32(const TensorInfo& info, std::span<float> out) const {
  if (static_cast<int64_t>(out.size()) != info.numel()) {
    throw ModelError(path().string() + ": tensor '" + info.name + "': destination holds " +
                std::to_string(out.size()) + " values, tensor " + std::to_string(info.numel()));
  }
  read_f32(info, 0, out);
}

void SafetensorsReader::read_f32(const TensorInfo& info, int64_t begin,
                                 std::span<float> out) const {
  const std::string where = path().string() + ": tensor '" + info.name + "': ";
  const auto count = static_cast<int64_t>(out.size());
  if (begin < 0 || begin > info.numel() || count > info.numel() - begin) {
    throw ModelError(where + "elements [" + std::to_string(begin) + ", " +
                std::to_string(begin + count) + ") are outside its " +
                std::to_string(info.numel()));
  }
  const std::byte* base = raw(info).data();
  switch (info.dtype) {
    case DType::kF32:
      if (!out.empty()) std::memcpy(out.data(), base + 4 * begin, out.size() * sizeof(float));
      return;
    case DType::kF16:
      convert_u16(base + 2 * begin, out, f16_to_f32);
      return;
    case DType::kBF16:
      convert_u16(base + 2 * begin, out, bf16_to_f32);
      return;
    default:
      throw ModelError(where + "dtype " + std::string(dtype_name(info.dtype)) +
                  " cannot be read as float32 (supported: F32, F16, BF16)");
  }
}

void SafetensorsReader::release(const TensorInfo& info) const {
  file_.release(static_cast<size_t>(data_start_ + info.begin),
                static_cast<size_t>(info.byte_size()));
}

void SafetensorsReader::release(const TensorInfo& info, int64_t begin, int64_t count) const {
  if (begin < 0 || count <= 0 || begin >= info.numel()) return;
  count = std::min(count, info.numel() - begin);
  const auto width = static_cast<uint64_t>(info.byte_size() / std::max<int64_t>(info.numel(), 1));
  file_.release(
      static_cast<size_t>(data_start_ + info.begin + width * static_cast<uint64_t>(begin)),
      static_cast<size_t>(width * static_cast<uint64_t>(count)));
}

std::vector<float> SafetensorsReader::read_f32(std::string_view name) const {
  const TensorInfo& t = info(name);
  std::vector<float> out(static_cast<size_t>(t.numel()));
  read_f32(t, out);
  return out;
}

}  // namespace model
