// Whole files, read and written as bytes.
#pragma once

#include <filesystem>
#include <string>

namespace test_support {

// The bytes of `path`; empty when it cannot be read.
std::string slurp(const std::filesystem::path& path);

// Replaces `path` with `bytes` (created if missing); throws std::runtime_error when it cannot.
void write_file(const std::filesystem::path& path, const std::string& bytes);

}  // namespace test_support
