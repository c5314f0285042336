// The one rule that names a model after its directory, shared by fhe_worker, the participant
// and fedctl: a participant and a worker given the same folder (spelled ".", "./", "dir/",
// through a symlink, ...) must agree on the id they speak of.
#pragma once

#include <filesystem>
#include <string>

namespace base {

// The last component of the canonical path of `dir` (symlinks resolved, "." and ".." and
// trailing slashes removed), or "model" when that is empty (the root folder). A directory
// that does not exist yet is named by its normalised absolute path the same way.
std::string default_model_id(const std::filesystem::path& dir);

}  // namespace base
