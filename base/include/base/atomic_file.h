// Durable, atomic replacement of a file: the one way the project writes state that must survive
// a crash (models, adapters, keys, budgets, checkpoints, a site's release ledger).
//
//   base::write_file_atomic(dir / "budget.json", text);           // mode 0644
//   base::write_file_atomic(dir / "dp.seed", secret, 0600);
//
// Writes FILE.tmp in the same directory (created with `mode`), fsyncs it, renames it over FILE
// and fsyncs the directory. A crash at any point leaves either the old file or the new one,
// never a torn one; on failure the old file is intact and FILE.tmp is removed. Throws
// base::IoError naming the file and the reason.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <filesystem>
#include <span>
#include <string_view>

namespace base {

void write_file_atomic(const std::filesystem::path& file, std::span<const uint8_t> bytes,
                       mode_t mode = 0644);
void write_file_atomic(const std::filesystem::path& file, std::string_view text,
                       mode_t mode = 0644);

}  // namespace base
