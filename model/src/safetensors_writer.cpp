#include "model/safetensors_writer.h"

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>

#include <fcntl.h>
#include <unistd.h>

#include "model/error.h"

namespace model {
namespace {

using nlohmann::ordered_json;

constexpr size_t kAlignment = 8;

struct FileCloser {
  void operator()(std::FILE* f) const { std::fclose(f); }
};
using File = std::unique_ptr<std::FILE, FileCloser>;

void check_tensor(const TensorToWrite& t, const std::string& source) {
  const std::string where = source + ": tensor '" + t.name + "': ";
  if (t.name.empty()) throw Error(source + ": a tensor has an empty name");
  if (t.name == "__metadata__") throw Error(where + "the name is reserved");
  if (!is_float_dtype(t.dtype)) {
    throw Error(where + "cannot write dtype " + std::string(dtype_name(t.dtype)));
  }
  uint64_t n = 1;
  for (int64_t d : t.shape) {
    if (d < 0) throw Error(where + "negative dimension in shape");
    if (__builtin_mul_overflow(n, static_cast<uint64_t>(d), &n)) {
      throw Error(where + "shape overflows");
    }
  }
  if (n != t.values.size()) {
    throw Error(where + "shape holds " + std::to_string(n) + " values but " +
                std::to_string(t.values.size()) + " were given");
  }
}

// Appends the tensor's values in its dtype, little-endian.
void encode(const TensorToWrite& t, std::vector<unsigned char>& out) {
  const size_t size = dtype_size(t.dtype);
  const size_t base = out.size();
  out.resize(base + size * t.values.size());
  unsigned char* dst = out.data() + base;
  for (size_t i = 0; i < t.values.size(); ++i) {
    if (t.dtype == DType::kF32) {
      std::memcpy(dst + 4 * i, &t.values[i], 4);
    } else {
      const uint16_t v =
          t.dtype == DType::kF16 ? f32_to_f16(t.values[i]) : f32_to_bf16(t.values[i]);
      std::memcpy(dst + 2 * i, &v, 2);
    }
  }
}

void write_all(std::FILE* f, const void* data, size_t size, const std::string& source) {
  if (size != 0 && std::fwrite(data, 1, size, f) != size) {
    throw Error(source + ": write failed");
  }
}

void check_spec(const TensorSpec& t, const std::string& source) {
  const std::string where = source + ": tensor '" + t.name + "': ";
  if (t.name.empty()) throw Error(source + ": a tensor has an empty name");
  if (t.name == "__metadata__") throw Error(where + "the name is reserved");
  if (!is_float_dtype(t.dtype)) {
    throw Error(where + "cannot write dtype " + std::string(dtype_name(t.dtype)));
  }
  uint64_t n = dtype_size(t.dtype);
  for (int64_t d : t.shape) {
    if (d < 0) throw Error(where + "negative dimension in shape");
    if (__builtin_mul_overflow(n, static_cast<uint64_t>(d), &n)) {
      throw Error(where + "shape overflows");
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
    : path_(path), tmp_(path.string() + ".tmp"), specs_(tensors.begin(), tensors.end()) {
  static_assert(std::endian::native == std::endian::little);
  const std::string source = path.string();
  std::vector<size_t> order;
  std::set<std::string> names;
  for (size_t i = 0; i < specs_.size(); ++i) {
    check_spec(specs_[i], source);
    if (!names.insert(specs_[i].name).second) {
      throw Error(source + ": tensor '" + specs_[i].name + "' appears twice");
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

  fd_ = ::open(tmp_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd_ < 0)
    throw Error(source + ": cannot create " + tmp_.string() + ": " + std::strerror(errno));
  std::string head(8, '\0');
  std::memcpy(head.data(), &header_len, 8);
  head += text;
  try {
    size_t done = 0;
    while (done < head.size()) {
      const ssize_t n =
          ::pwrite(fd_, head.data() + done, head.size() - done, static_cast<off_t>(done));
      if (n <= 0) throw Error(source + ": write failed: " + std::strerror(errno));
      done += static_cast<size_t>(n);
    }
    // The file's final size up front, so that a full disk shows here rather than mid-model.
    if (::ftruncate(fd_, static_cast<off_t>(8 + header_len + offset)) != 0) {
      throw Error(source + ": cannot size the file: " + std::strerror(errno));
    }
  } catch (...) {
    ::close(fd_);
    fd_ = -1;
    std::error_code ignored;
    std::filesystem::remove(tmp_, ignored);
    throw;
  }
}

SafetensorsStreamWriter::~SafetensorsStreamWriter() {
  if (fd_ >= 0) {
    ::close(fd_);
    std::error_code ignored;
    std::filesystem::remove(tmp_, ignored);
  }
}

void SafetensorsStreamWriter::write(size_t tensor, uint64_t first, std::span<const float> values) {
  const std::string source = path_.string();
  if (fd_ < 0) throw Error(source + ": write after finish");
  if (tensor >= specs_.size()) throw Error(source + ": no tensor #" + std::to_string(tensor));
  const TensorSpec& t = specs_[tensor];
  const uint64_t n = t.numel();
  if (first != written_[tensor] || values.size() > n - first) {
    throw Error(source + ": tensor '" + t.name + "': values [" + std::to_string(first) + ", +" +
                std::to_string(values.size()) + ") are not the next ones of " + std::to_string(n) +
                " (written " + std::to_string(written_[tensor]) + ")");
  }
  encode_values(t.dtype, values, buffer_);
  const uint64_t at = offsets_[tensor] + first * dtype_size(t.dtype);
  size_t done = 0;
  while (done < buffer_.size()) {
    const ssize_t w =
        ::pwrite(fd_, buffer_.data() + done, buffer_.size() - done, static_cast<off_t>(at + done));
    if (w <= 0) throw Error(source + ": write failed: " + std::strerror(errno));
    done += static_cast<size_t>(w);
  }
  written_[tensor] += values.size();
}

void SafetensorsStreamWriter::finish() {
  const std::string source = path_.string();
  if (fd_ < 0) throw Error(source + ": finished twice");
  for (size_t i = 0; i < specs_.size(); ++i) {
    if (written_[i] != specs_[i].numel()) {
      throw Error(source + ": tensor '" + specs_[i].name + "': " + std::to_string(written_[i]) +
                  " of " + std::to_string(specs_[i].numel()) + " values written");
    }
  }
  const int fd = fd_;
  fd_ = -1;
  if (::close(fd) != 0) {
    std::error_code ignored;
    std::filesystem::remove(tmp_, ignored);
    throw Error(source + ": write failed: " + std::strerror(errno));
  }
  std::error_code ec;
  std::filesystem::rename(tmp_, path_, ec);
  if (ec) {
    std::filesystem::remove(tmp_, ec);
    throw Error(source + ": cannot rename the temporary file into place");
  }
}

void write_safetensors(const std::filesystem::path& path, std::span<const TensorToWrite> tensors,
                       const std::map<std::string, std::string>& metadata) {
  static_assert(std::endian::native == std::endian::little);
  const std::string source = path.string();
  std::vector<const TensorToWrite*> order;
  std::set<std::string> names;
  for (const auto& t : tensors) {
    check_tensor(t, source);
    if (!names.insert(t.name).second) {
      throw Error(source + ": tensor '" + t.name + "' appears twice");
    }
    order.push_back(&t);
  }
  std::sort(order.begin(), order.end(),
            [](const TensorToWrite* a, const TensorToWrite* b) { return a->name < b->name; });

  ordered_json header = ordered_json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  uint64_t offset = 0;
  for (const TensorToWrite* t : order) {
    const uint64_t bytes = dtype_size(t->dtype) * t->values.size();
    header[t->name] = {{"dtype", dtype_name(t->dtype)},
                       {"shape", t->shape},
                       {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
  }
  std::string text = header.dump();
  text.append((kAlignment - text.size() % kAlignment) % kAlignment, ' ');
  const uint64_t header_len = text.size();

  const std::filesystem::path tmp = path.string() + ".tmp";
  try {
    File f(std::fopen(tmp.c_str(), "wb"));
    if (!f) throw Error(source + ": cannot create " + tmp.string() + ": " + std::strerror(errno));
    write_all(f.get(), &header_len, 8, source);
    write_all(f.get(), text.data(), text.size(), source);
    std::vector<unsigned char> buffer;
    for (const TensorToWrite* t : order) {
      buffer.clear();
      encode(*t, buffer);
      write_all(f.get(), buffer.data(), buffer.size(), source);
    }
    if (std::fclose(f.release()) != 0) throw Error(source + ": write failed");
  } catch (...) {
    std::error_code ignored;
    std::filesystem::remove(tmp, ignored);
    throw;
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) {
    std::filesystem::remove(tmp, ec);
    throw Error(source + ": cannot rename the temporary file into place");
  }
}

}  // namespace model
