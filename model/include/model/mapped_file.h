// A read-only memory mapping of a whole file (RAII: the mapping lives as long as the object).
#pragma once

#include <cstddef>
#include <filesystem>
#include <span>

namespace model {

class MappedFile {
 public:
  // Maps `path` read-only. Throws model::Error naming the file when it cannot be opened, is not
  // a regular file, or cannot be mapped. An empty file gives an empty mapping.
  explicit MappedFile(const std::filesystem::path& path);
  ~MappedFile();

  MappedFile(MappedFile&& other) noexcept;
  MappedFile& operator=(MappedFile&& other) noexcept;
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  std::span<const std::byte> bytes() const { return {data_, size_}; }
  size_t size() const { return size_; }
  const std::filesystem::path& path() const { return path_; }

 private:
  void unmap() noexcept;

  std::filesystem::path path_;
  const std::byte* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace model
