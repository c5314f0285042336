// Reads one safetensors file through a read-only memory mapping.
//
//   model::SafetensorsReader file("model.safetensors");
//   const model::TensorInfo& info = file.info("model.norm.weight");
//   std::vector<float> values = file.read_f32("model.norm.weight");
//
// Opening validates the whole header against the file size (see safetensors_header.h), so no
// later access can reach past the end of the file.
#pragma once

#include <cstddef>
#include <filesystem>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "model/mapped_file.h"
#include "model/safetensors_header.h"

namespace model {

class SafetensorsReader {
 public:
  // Maps and validates `path`. Throws model::ModelError naming the file: shorter than 8 bytes, a
  // header length past the end of the file or over kMaxSafetensorsHeaderBytes, or any header
  // error of parse_safetensors_header.
  explicit SafetensorsReader(const std::filesystem::path& path);

  const std::filesystem::path& path() const { return file_.path(); }
  // Every tensor, sorted by name.
  const std::vector<TensorInfo>& tensors() const { return header_.tensors; }
  const std::map<std::string, std::string>& metadata() const { return header_.metadata; }

  // The tensor called `name`, or nullptr.
  const TensorInfo* find(std::string_view name) const;
  // The tensor called `name`; throws model::ModelError if there is none.
  const TensorInfo& info(std::string_view name) const;

  // The tensor's raw little-endian bytes inside the mapping.
  std::span<const std::byte> raw(const TensorInfo& info) const;
  // Converts the tensor to float32 into `out`, which must hold exactly numel() values.
  // Throws model::ModelError for a dtype other than F32/F16/BF16 or a wrong `out` size.
  void read_f32(const TensorInfo& info, std::span<float> out) const;
  std::vector<float> read_f32(std::string_view name) const;
  // Converts elements [begin, begin + out.size()) of the tensor (row-major order) to float32:
  // a slice of rows, for a reader that never holds the whole tensor in float32. Throws
  // model::ModelError for a range past the tensor's end or a dtype as above.
  void read_f32(const TensorInfo& info, int64_t begin, std::span<float> out) const;
  // Drops the resident pages of the tensor's bytes from this process (MappedFile::release):
  // for a reader that has converted a tensor and will not read it again soon.
  void release(const TensorInfo& info) const;
  // The same for elements [begin, begin + count) (whole pages inside that range only).
  void release(const TensorInfo& info, int64_t begin, int64_t count) const;

 private:
  MappedFile file_;
  uint64_t data_start_ = 0;  // 8 + header length
  SafetensorsHeader header_;
};

}  // namespace model
