// The model library's use of base's atomic writer (base/atomic_file.h), through which every file
// it writes goes: checkpoints and their shards, adapters, configs, data sets. base reports a
// failure as base::IoError; callers of the library see model::ModelError, its one error type.
#pragma once

#include <filesystem>
#include <string_view>
#include <utility>

#include "base/atomic_file.h"
#include "base/error.h"
#include "model/error.h"

namespace model::detail {

// Runs `step` (calls on a base::AtomicFile), reporting a base::IoError as model::ModelError.
template <class F>
decltype(auto) rethrow_io(F&& step) {
  try {
    return std::forward<F>(step)();
  } catch (const base::IoError& e) {
    throw ModelError(e.what());
  }
}

// base::write_file_atomic(path, text): FILE.tmp, fsync, rename, fsync of the directory.
inline void write_text_file(const std::filesystem::path& path, std::string_view text) {
  rethrow_io([&] { base::write_file_atomic(path, text); });
}

}  // namespace model::detail
