// File helpers of the coordinator: whole-file reads and atomic replacement.
#pragma once

#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <vector>

#include "base/result.h"
#include "protocol/result.h"

namespace coordinator {

// The whole file; kIo if it cannot be read or is larger than `max_bytes`.
base::Result<std::vector<uint8_t>> read_file(const std::filesystem::path& file,
                                             uint64_t max_bytes = uint64_t{1} << 34);

// Replaces `file` atomically (base::write_file_atomic: FILE.tmp, fsync, rename, fsync of the
// directory); kIo naming the file on failure, the previous file left intact.
base::Status write_file_atomic(const std::filesystem::path& file, std::span<const uint8_t> bytes);
base::Status write_file_atomic(const std::filesystem::path& file, const std::string& text);

}  // namespace coordinator
