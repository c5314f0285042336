#include "base/model_id.h"

#include <system_error>

namespace base {

std::string default_model_id(const std::filesystem::path& dir) {
  std::error_code ec;
  std::filesystem::path p = std::filesystem::weakly_canonical(dir, ec);
  if (ec) p = std::filesystem::absolute(dir, ec).lexically_normal();
  while (!p.empty() && p.filename().empty() && p.has_relative_path()) p = p.parent_path();
  std::string name = p.filename().string();
  return name.empty() || name == "." || name == ".." ? "model" : name;
}

}  // namespace base
