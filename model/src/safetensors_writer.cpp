#include "model/safetensors_writer.h"

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>

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

}  // namespace

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
