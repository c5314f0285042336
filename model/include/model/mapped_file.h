// A read-only memory mapping of a whole file (RAII: the mapping lives as long as the object).
#pragma once

#include <cstddef>
#include <filesystem>
#include <span>

namespace model {

class MappedFile {
 public:
  // Maps `path` read-only. Throws model::ModelError naming the file when it cannot be opened, is
  // not a regular file, or cannot be mapped. An empty file gives an empty mapping.
  explicit MappedFile(const std::filesystem::path& path);
  ~MappedFile();

  MappedFile(MappedFile&& other) noexcept;
  MappedFile& operator=(MappedFile&& other) noexcept;
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  std::span<const std::byte> bytes() const { return {data_, size_}; }
  size_t size() const { return size_; }
  const std::filesystem::path& path() const { return path_; }

  // Drops this process's resident pages of bytes [offset, offset + length) (the whole pages
  // inside it), so that they stop counting in its RSS; a later access reads them back from the
  // page cache or the file. Contents never change. Out-of-range parts are ignored.
  void release(size_t offset, size_t length) const noexcept;

 private:
  void unmap() noexcept;

  std::filesystem::path path_;
  const std::byte* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace model
