#include "model/safetensors_writer.h"

#include <algorithm>
#include <bit>
#include <cstring>
#include <nlohmann/json.hpp>
#include <set>

#include "atomic_write.h"
#include "model/error.h"

namespace model {
namespace {

using nlohmann::ordered_json;

constexpr size_t kAlignment = 8;

void check_tensor(const TensorToWrite& t, const std::string& source) {
  const std::string where = source + ": tensor '" + t.name + "': ";
  if (t.name.empty()) throw ModelError(source + ": a tensor has an empty name");
  if (t.name == "__metadata__") throw ModelError(where + "the name is reserved");
  if (!is_float_dtype(t.dtype)) {
    throw ModelError(where + "cannot write dtype " + std::string(dtype_name(t.dtype)));
  }
  uint64_t n = 1;
  for (int64_t d : t.shape) {
    if (d < 0) throw ModelError(where + "negative dimension in shape");
    if (__builtin_mul_overflow(n, static_cast<uint64_t>(d), &n)) {
      throw ModelError(where + "shape overflows");
    }
  }
  if (n != t.values.size()) {
    throw ModelError(where + "shape holds " + std::to_string(n) + " values but " +
                std::to_string(t.values.size()) + " were given");
  }
}

void check_spec(const TensorSpec& t, const std::string& source) {
  const std::string where = source + ": tensor '" + t.name + "': ";
  if (t.name.empty()) throw ModelError(source + ": a tensor has an empty name");
  if (t.name == "__metadata__") throw ModelError(where + "the name is reserved");
  if (!is_float_dtype(t.dtype)) {
    throw ModelError(where + "cannot write dtype " + std::string(dtype_name(t.dtype)));
  }
  uint64_t n = dtype_size(t.dtype);
  for (int64_t d : t.shape) {
    if (d < 0) throw ModelError(where + "negative dimension in shape");
    if (__builtin_mul_overflow(n, static_cast<uint64_t>(d), &n)) {
      throw ModelError(where + "shape overflows");
    }
  }
}

// Converts values to `dtype`, little-endian, into `out` (resized).
void encode_values(DType dtype, std::span<const float> values, std::vector<unsigned char>& out) {
  const size_t size = dtype_size(dtype);
  out.resize(size * values.size());
  unsigned char* dst = out.data();
  for (size_t i = 0; i < values.size(); ++i) {
    if (dtype == DType::kF32) {
      std::memcpy(dst + 4 * i, &values[i], 4);
    } else {
      const uint16_t v = dtype == DType::kF16 ? f32_to_f16(values[i]) : f32_to_bf16(values[i]);
      std::memcpy(dst + 2 * i, &v, 2);
    }
  }
}

}  // namespace

uint64_t TensorSpec::numel() const {
  uint64_t n = 1;
  for (int64_t d : shape) n *= static_cast<uint64_t>(d);
  return n;
}

uint64_t TensorSpec::byte_size() const {
  return numel() * dtype_size(dtype);
}

SafetensorsStreamWriter::SafetensorsStreamWriter(const std::filesystem::path& path,
                                                 std::span<const TensorSpec> tensors,
                                                 const std::map<std::string, std::string>& metadata)
    : path_(path), specs_(tensors.begin(), tensors.end()) {
  static_assert(std::endian::native == std::endian::little);
  const std::string source = path.string();
  std::vector<size_t> order;
  std::set<std::string> names;
  for (size_t i = 0; i < specs_.size(); ++i) {
    check_spec(specs_[i], source);
    if (!names.insert(specs_[i].name).second) {
      throw ModelError(source + ": tensor '" + specs_[i].name + "' appears twice");
    }
    order.push_back(i);
  }
  std::sort(order.begin(), order.end(),
            [&](size_t a, size_t b) { return specs_[a].name < specs_[b].name; });
  ordered_json header = ordered_json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::vector<uint64_t> data_offsets(specs_.size());
  uint64_t offset = 0;
  for (size_t i : order) {
    const uint64_t bytes = specs_[i].byte_size();
    header[specs_[i].name] = {{"dtype", dtype_name(specs_[i].dtype)},
                              {"shape", specs_[i].shape},
                              {"data_offsets", {offset, offset + bytes}}};
    data_offsets[i] = offset;
    offset += bytes;
  }
  std::string text = header.dump();
  text.append((kAlignment - text.size() % kAlignment) % kAlignment, ' ');
  const uint64_t header_len = text.size();
  offsets_.resize(specs_.size());
  for (size_t i = 0; i < specs_.size(); ++i) offsets_[i] = 8 + header_len + data_offsets[i];
  written_.assign(specs_.size(), 0);

  std::string head(8, '\0');
  std::memcpy(head.data(), &header_len, 8);
  head += text;
  detail::rethrow_io([&] {
    file_.emplace(path_);
    // The file's final size up front, so that a full disk shows here rather than mid-model.
    file_->resize(8 + header_len + offset);
    file_->write_at(0, {reinterpret_cast<const uint8_t*>(head.data()), head.size()});
  });
}

SafetensorsStreamWriter::~SafetensorsStreamWriter() = default;

void SafetensorsStreamWriter::write(size_t tensor, uint64_t first, std::span<const float> values) {
  const std::string source = path_.string();
  if (!file_) throw ModelError(source + ": write after finish");
  if (tensor >= specs_.size()) throw ModelError(source + ": no tensor #" + std::to_string(tensor));
  const TensorSpec& t = specs_[tensor];
  const uint64_t n = t.numel();
  if (first != written_[tensor] || values.size() > n - first) {
    throw ModelError(source + ": tensor '" + t.name + "': values [" + std::to_string(first) + ", +" +
                std::to_string(values.size()) + ") are not the next ones of " + std::to_string(n) +
                " (written " + std::to_string(written_[tensor]) + ")");
  }
  encode_values(t.dtype, values, buffer_);
  const uint64_t at = offsets_[tensor] + first * dtype_size(t.dtype);
  detail::rethrow_io([&] { file_->write_at(at, buffer_); });
  written_[tensor] += values.size();
}

void SafetensorsStreamWriter::finish() {
  const std::string source = path_.string();
  if (!file_) throw ModelError(source + ": finished twice");
  for (size_t i = 0; i < specs_.size(); ++i) {
    if (written_[i] != specs_[i].numel()) {
      throw ModelError(source + ": tensor '" + specs_[i].name + "': " + std::to_string(written_[i]) +
                  " of " + std::to_string(specs_[i].numel()) + " values written");
    }
  }
  detail::rethrow_io([&] { file_->commit(); });
  file_.reset();
}

void write_safetensors(const std::filesystem::path& path, std::span<const TensorToWrite> tensors,
                       const std::map<std::string, std::string>& metadata) {
  const std::string source = path.string();
  std::vector<TensorSpec> specs;
  for (const auto& t : tensors) {
    check_tensor(t, source);
    specs.push_back({t.name, t.dtype, t.shape});
  }
  SafetensorsStreamWriter out(path, specs, metadata);
  for (size_t i = 0; i < tensors.size(); ++i) out.write(i, 0, tensors[i].values);
  out.finish();
}

}  // namespace model
